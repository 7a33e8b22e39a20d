/*  test_dispatcher_expired: how the dispatch core hands out the peers that
    liveness removed (zkit__dispatcher_next_expired): order, contents, a
    peer that registers again before the drain, and the max_expired bound.
    Split from test_dispatcher.c (which also checks the drain against its
    random model); time is injected, nothing sleeps.

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
#include <stdlib.h>
#include <string.h>

#include "core/dispatcher.h"

#define NEVER ZKIT__DISPATCHER_NEVER
#define T0    1000 /* tests start here, so "0" never means anything special */

/* heartbeat 1000 x liveness 3: silent for more than 3000 ms is dead.        */
#define SILENCE 3000

/* A routing id from a string literal: P("A") is the pair ("A", 1).          */
#define P(name) name, sizeof name - 1

static uint64_t s_drained; /* records handed out, for the identity */

static zkit__dispatcher_t *s_new(size_t max_expired)
{
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.max_expired = max_expired;
    opts.payload_free = NULL; /* payloads here are static ints */
    s_drained = 0;
    zkit__dispatcher_t *d = zkit__dispatcher_new(&opts);
    assert_non_null(d);
    return d;
}

/* Drains one record and checks it is peer, last seen at last_seen, removed
   by the call at expired_ms, registered again or not.                       */
static void s_expect(zkit__dispatcher_t *d, const char *peer, int64_t last_seen, int64_t expired_ms,
                     bool registered)
{
    zkit__dispatcher_expired_t rec;
    memset(&rec, 0xAA, sizeof rec);
    assert_true(zkit__dispatcher_next_expired(d, &rec));
    s_drained++;
    assert_int_equal(rec.peer_size, strlen(peer));
    assert_memory_equal(rec.peer, peer, rec.peer_size);
    assert_int_equal(rec.last_seen_ms, last_seen);
    assert_int_equal(rec.expired_ms, expired_ms);
    assert_int_equal(rec.registered, registered);
}

static void s_expect_none(zkit__dispatcher_t *d)
{
    zkit__dispatcher_expired_t rec;
    assert_false(zkit__dispatcher_next_expired(d, &rec));
}

/* Every expired peer is drained, pending or dropped (dispatcher.h).        */
static void s_check_identity(zkit__dispatcher_t *d)
{
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    assert_int_equal(c->peers_expired, s_drained + c->expired_pending + c->expired_dropped);
}

/* Registers a peer whose name is "peer-<n>" at now.                         */
static void s_ready_n(zkit__dispatcher_t *d, int n, int64_t now)
{
    char rid[32];
    snprintf(rid, sizeof rid, "peer-%d", n);
    assert_int_equal(zkit__dispatcher_peer_ready(d, rid, strlen(rid), 1, now), 0);
}

/* ---- order and contents ------------------------------------------------- */

/*  Three peers expire in one tick: they come out least recently seen first,
    with their routing id, last sign of life and the time of the tick; one
    that left by peer_gone gives no record, and neither does a live one.   */
static void test_expired_order_and_contents(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new(16);
    s_expect_none(d);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A-long-routing-id"), 2, T0 + 5), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("C"), 1, T0 + 7), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("gone"), 1, T0 + 8), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("live"), 1, T0 + 9), 0);
    /* B is seen later than the others: it moves behind them.               */
    assert_int_equal(zkit__dispatcher_peer_seen(d, P("B"), T0 + 10), 0);
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("gone"), T0 + 11), 0);
    assert_int_equal(zkit__dispatcher_peer_seen(d, P("live"), T0 + 2000), 0);

    /* One millisecond short of B's expiry: A and C only.                   */
    zkit__dispatcher_tick(d, T0 + 10 + SILENCE);
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    assert_int_equal(c->peers_expired, 2);
    assert_int_equal(c->expired_pending, 2);
    zkit__dispatcher_tick(d, T0 + 10 + SILENCE + 1);
    assert_int_equal(c->peers_expired, 3);
    assert_int_equal(c->expired_pending, 3);
    assert_int_equal(c->peers, 1);

    s_expect(d, "A-long-routing-id", T0 + 5, T0 + 10 + SILENCE, false);
    s_expect(d, "C", T0 + 7, T0 + 10 + SILENCE, false);
    s_expect(d, "B", T0 + 10, T0 + 11 + SILENCE, false);
    s_expect_none(d);
    assert_int_equal(c->expired_pending, 0);
    assert_int_equal(c->expired_dropped, 0);
    s_check_identity(d);
    zkit__dispatcher_destroy(&d);
}

/*  next() applies liveness before it hands out work: a peer it presumes
    dead there gets a record too, and its work goes to the live peer.      */
static void test_expired_by_next(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new(16);
    static int payload = 7;
    uint8_t id[16] = {0x01, 0x8f, 0x3a, 0x5c, 0x22, 0x10, 0x70, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("dead"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("live"), 1, T0 + 2000), 0);
    assert_int_equal(zkit__dispatcher_submit(d, id, &payload, NEVER, T0), 0);
    zkit__dispatcher_job_t job;
    assert_true(zkit__dispatcher_next(d, T0 + SILENCE + 1, &job));
    assert_int_equal(job.peer_size, 4);
    assert_memory_equal(job.peer, "live", 4);
    s_expect(d, "dead", T0, T0 + SILENCE + 1, false);
    s_expect_none(d);
    s_check_identity(d);
    zkit__dispatcher_destroy(&d);
}

/* ---- a peer that comes back before the drain ----------------------------- */

/*  A peer expires and says READY again before the caller drained: the
    record is still handed out (the expiry happened, and was counted), marked
    registered, and the new registration is untouched by the drain. Should
    it then expire again, each expiry has its own record.                  */
static void test_expired_then_ready_before_drain(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new(16);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("W"), 2, T0), 0);
    zkit__dispatcher_tick(d, T0 + SILENCE + 1);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("W"), 3, T0 + SILENCE + 2), 0);

    s_expect(d, "W", T0, T0 + SILENCE + 1, true);
    s_expect_none(d);
    zkit__dispatcher_peer_info_t info;
    assert_int_equal(zkit__dispatcher_peer_info(d, P("W"), &info), 0);
    assert_int_equal(info.window, 3);
    assert_int_equal(info.last_seen_ms, T0 + SILENCE + 2);
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    assert_int_equal(c->peers_expired, 1);
    assert_int_equal(c->peers, 1);

    /* Expires, comes back, expires again, all before a drain: two records,
       and W is not registered when they are drained.                      */
    int64_t t1 = T0 + 2 * SILENCE + 3;
    zkit__dispatcher_tick(d, t1);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("W"), 1, t1 + 10), 0);
    zkit__dispatcher_tick(d, t1 + 10 + SILENCE + 1);
    assert_int_equal(c->peers_expired, 3);
    assert_int_equal(c->peers, 0);
    s_expect(d, "W", T0 + SILENCE + 2, t1, false);
    s_expect(d, "W", t1 + 10, t1 + 10 + SILENCE + 1, false);
    s_expect_none(d);
    s_check_identity(d);
    zkit__dispatcher_destroy(&d);
}

/* ---- the bound ----------------------------------------------------------- */

/*  A caller that never drains: one peer expires per instant, 2000 times.
    The records never exceed max_expired, the oldest are the ones dropped
    (counted), and what is left is the newest, in order.                    */
static void test_expired_bound_never_drained(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new(4);
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    int64_t now = T0;
    for (int n = 0; n < 2000; n++) {
        s_ready_n(d, n, now);
        now += SILENCE + 1;
        zkit__dispatcher_tick(d, now);
        assert_int_equal(c->peers_expired, (uint64_t) n + 1);
        assert_true(c->expired_pending <= 4);
        s_check_identity(d);
    }
    assert_int_equal(c->expired_pending, 4);
    assert_int_equal(c->expired_dropped, 1996);
    for (int n = 1996; n < 2000; n++) {
        char rid[32];
        snprintf(rid, sizeof rid, "peer-%d", n);
        int64_t seen = T0 + (int64_t) n * (SILENCE + 1);
        s_expect(d, rid, seen, seen + SILENCE + 1, false);
    }
    s_expect_none(d);
    s_check_identity(d);
    zkit__dispatcher_destroy(&d);
}

/*  Records of the current instant are never dropped, whatever the bound:
    100 peers expiring in one tick all reach a caller that drains after it,
    with max_expired 2 and even 0. The next instant's expiry then trims the
    older ones down to the bound.                                            */
static void test_expired_bound_keeps_current_instant(void **state)
{
    (void) state;
    for (size_t max = 0; max <= 2; max += 2) {
        zkit__dispatcher_t *d = s_new(max);
        const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
        for (int n = 0; n < 100; n++)
            s_ready_n(d, n, T0);
        s_ready_n(d, 100, T0 + 1);
        zkit__dispatcher_tick(d, T0 + SILENCE + 1);
        assert_int_equal(c->expired_pending, 100);
        assert_int_equal(c->expired_dropped, 0);

        /* Not drained; peer-100 expires one instant later.                 */
        zkit__dispatcher_tick(d, T0 + SILENCE + 2);
        assert_int_equal(c->peers_expired, 101);
        assert_int_equal(c->expired_pending, max ? max : 1);
        assert_int_equal(c->expired_dropped, max ? 99 : 100);
        if (max)
            s_expect(d, "peer-99", T0, T0 + SILENCE + 1, false);
        s_expect(d, "peer-100", T0 + 1, T0 + SILENCE + 2, false);
        s_expect_none(d);
        s_check_identity(d);
        zkit__dispatcher_destroy(&d);
    }
}

/*  A caller that drains after every instant loses nothing with the
    smallest bound, and destroy frees records never drained (ASan checks).  */
static void test_expired_drained_each_instant_loses_nothing(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new(0);
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    int64_t now = T0;
    for (int round = 0; round < 50; round++) {
        for (int n = 0; n < round % 7; n++)
            s_ready_n(d, n, now);
        now += SILENCE + 1;
        zkit__dispatcher_tick(d, now);
        for (int n = 0; n < round % 7; n++) {
            char rid[32];
            snprintf(rid, sizeof rid, "peer-%d", n);
            s_expect(d, rid, now - SILENCE - 1, now, false);
        }
        s_expect_none(d);
    }
    assert_int_equal(c->expired_dropped, 0);
    s_check_identity(d);
    /* Left pending on purpose: destroy releases them.                      */
    s_ready_n(d, 1, now);
    s_ready_n(d, 2, now);
    zkit__dispatcher_tick(d, now + SILENCE + 1);
    assert_int_equal(c->expired_pending, 2);
    zkit__dispatcher_destroy(&d);
    assert_null(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expired_order_and_contents),
        cmocka_unit_test(test_expired_by_next),
        cmocka_unit_test(test_expired_then_ready_before_drain),
        cmocka_unit_test(test_expired_bound_never_drained),
        cmocka_unit_test(test_expired_bound_keeps_current_instant),
        cmocka_unit_test(test_expired_drained_each_instant_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
