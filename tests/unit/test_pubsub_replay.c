/*  test_pubsub_replay: the publisher's replay buffer holds one contiguous run
    of seqs, evicts the oldest by count and by bytes, finds any seq it holds,
    plans range answers exactly (lost / served / not yet there, batch cap),
    and shares frame bytes instead of copying them.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pubsub/replay.h"

/*  Puts seq with a topic "t" and an envelope of size bytes (>= 8) whose
    first 8 bytes are the seq, so a get can be checked.                     */
static int s_put(zkit__replay_t *ring, uint64_t seq, size_t size)
{
    zmq_msg_t topic, env;
    zmq_msg_init_size(&topic, 1);
    memcpy(zmq_msg_data(&topic), "t", 1);
    zmq_msg_init_size(&env, size);
    memset(zmq_msg_data(&env), 0xab, size);
    memcpy(zmq_msg_data(&env), &seq, sizeof seq);
    int rc = zkit__replay_put(ring, seq, &topic, &env);
    zmq_msg_close(&topic);
    zmq_msg_close(&env);
    return rc;
}

static void s_assert_holds(zkit__replay_t *ring, uint64_t seq)
{
    const zkit__replay_entry_t *e = zkit__replay_get(ring, seq);
    assert_non_null(e);
    assert_int_equal(e->seq, seq);
    uint64_t stored;
    memcpy(&stored, zmq_msg_data((zmq_msg_t *) &e->envelope), sizeof stored);
    assert_int_equal(stored, seq);
}

static void test_new_rejects_zero_bounds(void **state)
{
    (void) state;
    errno = 0;
    assert_null(zkit__replay_new(0, 100));
    assert_int_equal(errno, EINVAL);
    assert_null(zkit__replay_new(10, 0));
    zkit__replay_t *ring = NULL;
    zkit__replay_destroy(&ring); /* safe on NULL */
    zkit__replay_destroy(NULL);
}

static void test_empty(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(10, 1 << 20);
    assert_int_equal(zkit__replay_count(ring), 0);
    assert_int_equal(zkit__replay_last(ring), 0);
    assert_int_equal(zkit__replay_first(ring), 1);
    assert_null(zkit__replay_get(ring, 1));
    zkit__replay_plan_t plan;
    zkit__replay_plan(ring, 1, 5, 100, &plan);
    assert_int_equal(plan.lost_to, 0); /* never published: not lost, not there */
    assert_int_equal(plan.serve_to, 0);
    zkit__replay_destroy(&ring);
    assert_null(ring);
}

static void test_put_get_in_order(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(1000, 1 << 20);
    for (uint64_t s = 1; s <= 500; s++) /* grows past the initial slots */
        assert_int_equal(s_put(ring, s, 16), 0);
    assert_int_equal(zkit__replay_count(ring), 500);
    assert_int_equal(zkit__replay_first(ring), 1);
    assert_int_equal(zkit__replay_last(ring), 500);
    assert_int_equal(zkit__replay_bytes(ring), 500 * 17);
    for (uint64_t s = 1; s <= 500; s++)
        s_assert_holds(ring, s);
    assert_null(zkit__replay_get(ring, 0));
    assert_null(zkit__replay_get(ring, 501));
    zkit__replay_destroy(&ring);
}

static void test_evicts_by_count(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(100, 1 << 20);
    for (uint64_t s = 1; s <= 1050; s++)
        assert_int_equal(s_put(ring, s, 16), 0);
    assert_int_equal(zkit__replay_count(ring), 100);
    assert_int_equal(zkit__replay_first(ring), 951);
    assert_int_equal(zkit__replay_last(ring), 1050);
    assert_int_equal(zkit__replay_evicted(ring), 950);
    assert_null(zkit__replay_get(ring, 950));
    for (uint64_t s = 951; s <= 1050; s++) /* the ring wrapped many times */
        s_assert_holds(ring, s);
    zkit__replay_destroy(&ring);
}

static void test_evicts_by_bytes(void **state)
{
    (void) state;
    /* 10 messages of 1 + 99 bytes fit in 1000; the 11th evicts the first. */
    zkit__replay_t *ring = zkit__replay_new(1000, 1000);
    for (uint64_t s = 1; s <= 10; s++)
        assert_int_equal(s_put(ring, s, 99), 0);
    assert_int_equal(zkit__replay_count(ring), 10);
    assert_int_equal(zkit__replay_bytes(ring), 1000);
    assert_int_equal(s_put(ring, 11, 99), 0);
    assert_int_equal(zkit__replay_first(ring), 2);
    assert_int_equal(zkit__replay_bytes(ring), 1000);
    /* a big one evicts several */
    assert_int_equal(s_put(ring, 12, 399), 0);
    assert_int_equal(zkit__replay_first(ring), 6);
    assert_true(zkit__replay_bytes(ring) <= 1000);
    s_assert_holds(ring, 12);
    zkit__replay_destroy(&ring);
}

static void test_oversized_message_is_evicted_at_once(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(1000, 100);
    for (uint64_t s = 1; s <= 5; s++)
        assert_int_equal(s_put(ring, s, 10), 0);
    assert_int_equal(s_put(ring, 6, 200), 0);
    assert_int_equal(zkit__replay_count(ring), 0);
    assert_int_equal(zkit__replay_last(ring), 6);
    assert_int_equal(zkit__replay_first(ring), 7);
    assert_int_equal(zkit__replay_evicted(ring), 6);
    /* and the run goes on contiguously */
    assert_int_equal(s_put(ring, 7, 10), 0);
    s_assert_holds(ring, 7);
    zkit__replay_plan_t plan;
    zkit__replay_plan(ring, 1, 7, 100, &plan);
    assert_int_equal(plan.lost_to, 6);
    assert_int_equal(plan.serve_from, 7);
    assert_int_equal(plan.serve_to, 7);
    zkit__replay_destroy(&ring);
}

static void test_seq_jump_restarts_the_run(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(100, 1 << 20);
    for (uint64_t s = 1; s <= 10; s++)
        s_put(ring, s, 16);
    /* a publisher that starts numbering again (restart) */
    assert_int_equal(s_put(ring, 1, 16), 0);
    assert_int_equal(zkit__replay_count(ring), 1);
    assert_int_equal(zkit__replay_first(ring), 1);
    assert_int_equal(zkit__replay_last(ring), 1);
    /* a gap in the numbering */
    assert_int_equal(s_put(ring, 5, 16), 0);
    assert_int_equal(zkit__replay_count(ring), 1);
    assert_int_equal(zkit__replay_first(ring), 5);
    assert_null(zkit__replay_get(ring, 1));
    /* seq 0 never exists */
    errno = 0;
    assert_int_equal(s_put(ring, 0, 16), -1);
    assert_int_equal(errno, EINVAL);
    zkit__replay_destroy(&ring);
}

static void test_plan_ranges(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(100, 1 << 20);
    for (uint64_t s = 1; s <= 300; s++)
        s_put(ring, s, 16);
    /* holds 201..300 */
    zkit__replay_plan_t p;

    zkit__replay_plan(ring, 210, 220, 1000, &p); /* wholly held */
    assert_int_equal(p.lost_to, 0);
    assert_int_equal(p.serve_from, 210);
    assert_int_equal(p.serve_to, 220);

    zkit__replay_plan(ring, 150, 250, 1000, &p); /* straddles the oldest */
    assert_int_equal(p.lost_to, 200);
    assert_int_equal(p.serve_from, 201);
    assert_int_equal(p.serve_to, 250);

    zkit__replay_plan(ring, 10, 20, 1000, &p); /* wholly evicted */
    assert_int_equal(p.lost_to, 20);
    assert_int_equal(p.serve_to, 0);

    zkit__replay_plan(ring, 290, 400, 1000, &p); /* runs past the newest */
    assert_int_equal(p.lost_to, 0);
    assert_int_equal(p.serve_from, 290);
    assert_int_equal(p.serve_to, 300);

    zkit__replay_plan(ring, 301, 400, 1000, &p); /* not published yet */
    assert_int_equal(p.lost_to, 0);
    assert_int_equal(p.serve_to, 0);

    zkit__replay_plan(ring, 150, UINT64_MAX, 1000, &p); /* catch-up request */
    assert_int_equal(p.lost_to, 200);
    assert_int_equal(p.serve_from, 201);
    assert_int_equal(p.serve_to, 300);

    zkit__replay_plan(ring, 150, UINT64_MAX, 30, &p); /* batch cap */
    assert_int_equal(p.lost_to, 200);
    assert_int_equal(p.serve_from, 201);
    assert_int_equal(p.serve_to, 230);

    zkit__replay_plan(ring, 201, 201, 1, &p); /* one */
    assert_int_equal(p.serve_from, 201);
    assert_int_equal(p.serve_to, 201);

    zkit__replay_plan(ring, 0, 5, 10, &p); /* invalid: nothing planned */
    assert_int_equal(p.lost_to, 0);
    assert_int_equal(p.serve_to, 0);
    zkit__replay_plan(ring, 9, 5, 10, &p);
    assert_int_equal(p.serve_to, 0);
    zkit__replay_destroy(&ring);
}

static void test_frames_are_shared_not_copied(void **state)
{
    (void) state;
    zkit__replay_t *ring = zkit__replay_new(10, 1 << 20);
    zmq_msg_t topic, env;
    zmq_msg_init_size(&topic, 3);
    memcpy(zmq_msg_data(&topic), "abc", 3);
    zmq_msg_init_size(&env, 4096); /* large: a reference-counted frame */
    memset(zmq_msg_data(&env), 7, 4096);
    assert_int_equal(zkit__replay_put(ring, 1, &topic, &env), 0);
    const zkit__replay_entry_t *e = zkit__replay_get(ring, 1);
    assert_ptr_equal(zmq_msg_data((zmq_msg_t *) &e->envelope), zmq_msg_data(&env));
    /* the caller's frames stay valid and its own */
    assert_int_equal(zmq_msg_size(&env), 4096);
    zmq_msg_close(&topic);
    zmq_msg_close(&env);
    /* and the ring's reference outlives them */
    e = zkit__replay_get(ring, 1);
    assert_int_equal(((uint8_t *) zmq_msg_data((zmq_msg_t *) &e->envelope))[4095], 7);
    zkit__replay_destroy(&ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_zero_bounds),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_put_get_in_order),
        cmocka_unit_test(test_evicts_by_count),
        cmocka_unit_test(test_evicts_by_bytes),
        cmocka_unit_test(test_oversized_message_is_evicted_at_once),
        cmocka_unit_test(test_seq_jump_restarts_the_run),
        cmocka_unit_test(test_plan_ranges),
        cmocka_unit_test(test_frames_are_shared_not_copied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
