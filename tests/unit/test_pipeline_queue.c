/*  test_pipeline_queue: the ventilator's submit queue (ventilator_queue.h),
    alone: order, wakeups, max_pending, slab reuse, destruction.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/ventilator_queue.h"

#define DEADLINE_MS 20000

static bool s_readable(zkit__vqueue_t *q, int timeout_ms)
{
    struct pollfd p = {.fd = zkit__vqueue_fd(q), .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static int s_put_task(zkit__vqueue_t *q, const void *body, size_t size)
{
    return zkit__vqueue_put(q, ZKIT__VQUEUE_TASK, body, size, NULL, 10);
}

/* A body whose bytes say which task it is. */
static void s_fill(uint8_t *buf, size_t size, uint32_t n)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t) (n * 7 + i);
}

static size_t s_size_of(uint32_t n)
{
    /* Small and large bodies mixed: some cross slab boundaries, some get a
       slab of their own (above a quarter of a slab).                      */
    static const size_t sizes[] = {0, 1, 64, 1000, 5000, ZKIT__VQUEUE_SLAB / 4 + 1, 70000, 200};
    return sizes[n % (sizeof sizes / sizeof sizes[0])];
}

/* ---- order ------------------------------------------------------------------- */

static void test_order_across_slabs(void **state)
{
    (void) state;
    enum { N = 2000 };
    zkit__vqueue_t *q = zkit__vqueue_new(0);
    assert_non_null(q);
    uint8_t *buf = malloc(70000);
    assert_non_null(buf);
    assert_int_equal(zkit__vqueue_put(q, ZKIT__VQUEUE_OPEN, "b1", 2, NULL, 0), 0);
    for (uint32_t n = 0; n < N; n++) {
        s_fill(buf, s_size_of(n), n);
        assert_int_equal(s_put_task(q, buf, s_size_of(n)), 0);
    }
    assert_int_equal(zkit__vqueue_put(q, ZKIT__VQUEUE_CLOSE, NULL, 0, NULL, 0), 0);
    assert_int_equal(zkit__vqueue_held(q), N);

    zkit__ventilator_task_t *rec = zkit__vqueue_next(q);
    assert_non_null(rec);
    assert_int_equal(rec->kind, ZKIT__VQUEUE_OPEN);
    assert_int_equal(rec->size, 2);
    assert_memory_equal(rec->body, "b1", 2);
    zkit__vqueue_release(q, rec);
    /* Hold every task until the end: slabs must stay put while held.     */
    zkit__ventilator_task_t **held = calloc(N, sizeof *held);
    assert_non_null(held);
    for (uint32_t n = 0; n < N; n++) {
        rec = zkit__vqueue_next(q);
        assert_non_null(rec);
        assert_int_equal(rec->kind, ZKIT__VQUEUE_TASK);
        assert_int_equal(rec->size, s_size_of(n));
        assert_null(rec->reason);
        assert_true(rec->ts > 0);
        held[n] = rec;
    }
    rec = zkit__vqueue_next(q);
    assert_non_null(rec);
    assert_int_equal(rec->kind, ZKIT__VQUEUE_CLOSE);
    zkit__vqueue_release(q, rec);
    assert_null(zkit__vqueue_next(q));
    for (uint32_t n = 0; n < N; n++) {
        s_fill(buf, s_size_of(n), n);
        if (s_size_of(n))
            assert_memory_equal(held[n]->body, buf, s_size_of(n));
    }
    /* Released out of order, as reliable mode retires tasks.             */
    for (uint32_t n = 0; n < N; n += 2)
        zkit__vqueue_release(q, held[n]);
    for (uint32_t n = 1; n < N; n += 2)
        zkit__vqueue_release(q, held[n]);
    zkit__vqueue_give(q, N);
    assert_int_equal(zkit__vqueue_held(q), 0);
    free(held);
    free(buf);
    zkit__vqueue_destroy(&q);
    assert_null(q);
    zkit__vqueue_destroy(&q); /* safe on NULL */
}

/* ---- wakeups ------------------------------------------------------------------- */

static void test_wakeup_only_when_idle(void **state)
{
    (void) state;
    zkit__vqueue_t *q = zkit__vqueue_new(0);
    assert_non_null(q);
    /* Not idle yet (the actor never looked): a put does not wake.         */
    assert_int_equal(s_put_task(q, "a", 1), 0);
    assert_false(s_readable(q, 0));
    zkit__ventilator_task_t *rec = zkit__vqueue_next(q);
    assert_non_null(rec);
    zkit__vqueue_release(q, rec);
    assert_null(zkit__vqueue_next(q)); /* now idle */
    assert_false(s_readable(q, 0));

    /* The first put after idle wakes; later ones add no wakeup.           */
    assert_int_equal(s_put_task(q, "b", 1), 0);
    assert_true(s_readable(q, 0));
    zkit__vqueue_clear(q);
    assert_false(s_readable(q, 0));
    for (int i = 0; i < 100; i++)
        assert_int_equal(s_put_task(q, "c", 1), 0);
    assert_false(s_readable(q, 0));
    int count = 0;
    while ((rec = zkit__vqueue_next(q)) != NULL) {
        count++;
        zkit__vqueue_release(q, rec);
    }
    assert_int_equal(count, 101);
    /* Idle again: the next put wakes again.                                */
    assert_int_equal(zkit__vqueue_put(q, ZKIT__VQUEUE_CLOSE, NULL, 0, NULL, 0), 0);
    assert_true(s_readable(q, 0));
    zkit__vqueue_destroy(&q);
}

/* A producer thread and a consumer that sleeps on the fd: nothing is lost,
   nothing is reordered, and the consumer never sleeps through a put.      */
typedef struct {
    zkit__vqueue_t *q;
    uint32_t n;
} s_producer_t;

static void *s_produce(void *arg)
{
    s_producer_t *p = arg;
    for (uint32_t i = 0; i < p->n; i++) {
        uint8_t body[8];
        memcpy(body, &i, sizeof i);
        memcpy(body + 4, &i, sizeof i);
        if (s_put_task(p->q, body, (i % 3) ? sizeof body : 4))
            return NULL;
        if (i % 1000 == 0)
            usleep(100); /* let the consumer go idle now and then */
    }
    return NULL;
}

static void test_threads_sleep_and_wake(void **state)
{
    (void) state;
    s_producer_t p = {.q = zkit__vqueue_new(0), .n = 200000};
    assert_non_null(p.q);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_produce, &p), 0);
    uint32_t expect = 0;
    int sleeps = 0;
    while (expect < p.n) {
        zkit__ventilator_task_t *rec = zkit__vqueue_next(p.q);
        if (!rec) {
            assert_true(s_readable(p.q, DEADLINE_MS)); /* a put must wake us */
            zkit__vqueue_clear(p.q);
            sleeps++;
            continue;
        }
        uint32_t got;
        memcpy(&got, rec->body, sizeof got);
        assert_int_equal(got, expect);
        assert_int_equal(rec->size, (expect % 3) ? 8 : 4);
        expect++;
        zkit__vqueue_release(p.q, rec);
    }
    pthread_join(thread, NULL);
    assert_null(zkit__vqueue_next(p.q));
    assert_true(sleeps >= 1);
    zkit__vqueue_destroy(&p.q);
}

/* ---- max_pending ----------------------------------------------------------------- */

typedef struct {
    zkit__vqueue_t *q;
    volatile int interrupted;
    atomic_int done;
    int rc;
    int err;
} s_blocked_t;

static void *s_put_blocked(void *arg)
{
    s_blocked_t *b = arg;
    b->rc = zkit__vqueue_put(b->q, ZKIT__VQUEUE_TASK, "x", 1, &b->interrupted, 10);
    b->err = errno;
    atomic_store(&b->done, 1);
    return NULL;
}

static void s_start_blocked(s_blocked_t *b, pthread_t *thread)
{
    atomic_store(&b->done, 0);
    b->interrupted = 0;
    assert_int_equal(pthread_create(thread, NULL, s_put_blocked, b), 0);
    usleep(100 * 1000);
    assert_int_equal(atomic_load(&b->done), 0); /* still blocked */
}

static void test_max_pending(void **state)
{
    (void) state;
    s_blocked_t b = {.q = zkit__vqueue_new(2)};
    assert_non_null(b.q);
    assert_int_equal(s_put_task(b.q, "1", 1), 0);
    assert_int_equal(s_put_task(b.q, "2", 1), 0);
    /* OPEN and CLOSE take no credit.                                       */
    assert_int_equal(zkit__vqueue_put(b.q, ZKIT__VQUEUE_CLOSE, NULL, 0, NULL, 0), 0);
    assert_int_equal(zkit__vqueue_held(b.q), 2);

    /* Released by a credit given back.                                     */
    pthread_t thread;
    s_start_blocked(&b, &thread);
    zkit__vqueue_give(b.q, 1);
    pthread_join(thread, NULL);
    assert_int_equal(b.rc, 0);
    assert_int_equal(zkit__vqueue_held(b.q), 2);

    /* Ended by the interrupt flag: EINTR, no credit taken.                */
    s_start_blocked(&b, &thread);
    b.interrupted = 1;
    pthread_join(thread, NULL);
    assert_int_equal(b.rc, -1);
    assert_int_equal(b.err, EINTR);
    assert_int_equal(zkit__vqueue_held(b.q), 2);

    /* Ended by a stop: ECANCELED, then every put fails the same way.      */
    s_start_blocked(&b, &thread);
    zkit__vqueue_stop(b.q);
    pthread_join(thread, NULL);
    assert_int_equal(b.rc, -1);
    assert_int_equal(b.err, ECANCELED);
    assert_int_equal(s_put_task(b.q, "y", 1), -1);
    assert_int_equal(errno, ECANCELED);
    assert_int_equal(zkit__vqueue_put(b.q, ZKIT__VQUEUE_OPEN, "b", 1, NULL, 0), -1);
    assert_int_equal(errno, ECANCELED);
    zkit__vqueue_destroy(&b.q);
}

/* ---- memory ------------------------------------------------------------------------ */

/*  In steady state records reuse a few slabs: no allocation per task.       */
static void test_slabs_reused(void **state)
{
    (void) state;
    enum { ROUNDS = 2000, BURST = 50, SEEN_MAX = 64 };
    zkit__vqueue_t *q = zkit__vqueue_new(0);
    assert_non_null(q);
    uint8_t body[300] = {0};
    const void *seen[SEEN_MAX];
    int nseen = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < BURST; i++)
            assert_int_equal(s_put_task(q, body, sizeof body), 0);
        zkit__ventilator_task_t *rec;
        while ((rec = zkit__vqueue_next(q)) != NULL) {
            bool known = false;
            for (int k = 0; k < nseen; k++)
                known |= seen[k] == (const void *) rec->slab;
            if (!known) {
                assert_true(nseen < SEEN_MAX); /* a handful of slabs, reused */
                seen[nseen++] = rec->slab;
            }
            zkit__vqueue_release(q, rec);
        }
    }
    assert_true(nseen <= 10);
    zkit__vqueue_destroy(&q);
}

/*  Destroying frees what was never taken, what was taken and not released,
    and large records (ASan checks the leaks).                                */
static void test_destroy_with_records(void **state)
{
    (void) state;
    zkit__vqueue_t *q = zkit__vqueue_new(0);
    assert_non_null(q);
    uint8_t *big = calloc(1, 100000);
    assert_non_null(big);
    assert_int_equal(zkit__vqueue_put(q, ZKIT__VQUEUE_OPEN, "b", 1, NULL, 0), 0);
    for (int i = 0; i < 500; i++)
        assert_int_equal(s_put_task(q, big, (i % 50) ? 100 : 100000), 0);
    /* Take some and keep them, release one, leave the rest in the queue.  */
    zkit__ventilator_task_t *rec = NULL;
    for (int i = 0; i < 120; i++)
        rec = zkit__vqueue_next(q);
    assert_non_null(rec);
    zkit__vqueue_release(q, rec);
    zkit__vqueue_destroy(&q);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_across_slabs),     cmocka_unit_test(test_wakeup_only_when_idle),
        cmocka_unit_test(test_threads_sleep_and_wake), cmocka_unit_test(test_max_pending),
        cmocka_unit_test(test_slabs_reused),           cmocka_unit_test(test_destroy_with_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
