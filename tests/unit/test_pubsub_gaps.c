/*  test_pubsub_gaps: the subscriber's gap detector, per source: in-order
    seqs, gaps, out-of-order fills (live and replayed), duplicates, publisher
    restarts by epoch (and without one), stale epochs, LOST declarations with
    every shape of overlap, the cap on separate gaps, positions.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/gaps.h"

#define S_MAX_EVENTS 64

typedef struct {
    zkit_stream_event_t ev[S_MAX_EVENTS];
    char src[S_MAX_EVENTS][32];
    int count;
} s_log_t;

static void s_record(zkit__gaps_stream_t *stream, const zkit_stream_event_t *event, void *arg)
{
    (void) stream;
    s_log_t *log = arg;
    assert_true(log->count < S_MAX_EVENTS);
    log->ev[log->count] = *event;
    strncpy(log->src[log->count], event->src, 31);
    log->count++;
}

static void s_assert_event(const s_log_t *log, int i, zkit_stream_event_kind_t kind, uint64_t from,
                           uint64_t to)
{
    assert_true(i < log->count);
    assert_int_equal(log->ev[i].kind, kind);
    assert_int_equal(log->ev[i].from, from);
    assert_int_equal(log->ev[i].to, to);
}

static void s_assert_missing(const zkit__gaps_stream_t *s, size_t n, const uint64_t *pairs)
{
    assert_int_equal(s->nmissing, n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s->missing[i].from, pairs[2 * i]);
        assert_int_equal(s->missing[i].to, pairs[2 * i + 1]);
        total += pairs[2 * i + 1] - pairs[2 * i] + 1;
    }
    assert_int_equal(s->missing_now, total);
}

static void test_new_and_lookup(void **state)
{
    (void) state;
    errno = 0;
    assert_null(zkit__gaps_new(0, 10, NULL, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(zkit__gaps_new(10, 0, NULL, NULL, NULL));
    zkit__gaps_t *g = zkit__gaps_new(2, 10, NULL, NULL, free);
    assert_null(zkit__gaps_stream(g, "a", false));
    zkit__gaps_stream_t *a = zkit__gaps_stream(g, "a", true);
    assert_non_null(a);
    assert_ptr_equal(zkit__gaps_stream(g, "a", true), a);
    assert_non_null(zkit__gaps_stream(g, "b", true));
    assert_null(zkit__gaps_stream(g, "c", true)); /* max_sources reached */
    assert_int_equal(zkit__gaps_count(g), 2);
    a->user = malloc(16); /* released by free_user at destroy */
    zkit__gaps_destroy(&g);
    assert_null(g);
    zkit__gaps_destroy(&g);
}

static void test_in_order_and_late_join(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    /* the first message seen sets the baseline: no gap before a late join */
    assert_int_equal(zkit__gaps_observe(g, s, 7, 100, false), ZKIT__GAPS_NEW);
    for (uint64_t q = 101; q <= 200; q++)
        assert_int_equal(zkit__gaps_observe(g, s, 7, q, false), ZKIT__GAPS_NEW);
    assert_int_equal(log.count, 0);
    assert_int_equal(s->next, 201);
    assert_int_equal(s->counters.in_order, 101);
    assert_int_equal(zkit__gaps_low_water(s), 201);
    zkit__gaps_destroy(&g);
}

static void test_gap_then_fills(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    zkit__gaps_observe(g, s, 1, 1, false);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 10, false), ZKIT__GAPS_GAP);
    assert_int_equal(log.count, 1);
    s_assert_event(&log, 0, ZKIT_STREAM_GAP, 2, 9);
    assert_string_equal(log.src[0], "pub");
    s_assert_missing(s, 1, (uint64_t[]){2, 9});
    assert_int_equal(zkit__gaps_low_water(s), 2);
    assert_true(zkit__gaps_is_missing(s, 5));
    assert_false(zkit__gaps_is_missing(s, 10));

    /* fills at the ends and in the middle (a split) */
    assert_int_equal(zkit__gaps_observe(g, s, 1, 2, false), ZKIT__GAPS_FILL);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 9, true), ZKIT__GAPS_FILL);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 5, true), ZKIT__GAPS_FILL);
    s_assert_missing(s, 2, (uint64_t[]){3, 4, 6, 8});
    assert_int_equal(s->counters.late, 1);
    assert_int_equal(s->counters.recovered, 2);
    /* duplicates: a fill received twice, and an in-order one again */
    assert_int_equal(zkit__gaps_observe(g, s, 1, 5, true), ZKIT__GAPS_DUPLICATE);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 10, false), ZKIT__GAPS_DUPLICATE);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 1, false), ZKIT__GAPS_DUPLICATE);
    assert_int_equal(s->counters.duplicates, 3);
    for (uint64_t q = 3; q <= 8; q++)
        if (q != 5)
            assert_int_equal(zkit__gaps_observe(g, s, 1, q, true), ZKIT__GAPS_FILL);
    s_assert_missing(s, 0, NULL);
    assert_int_equal(s->counters.gaps, 1);
    assert_int_equal(s->counters.missing, 8);
    assert_int_equal(zkit__gaps_low_water(s), 11);
    assert_int_equal(log.count, 1); /* fills fire no event */
    zkit__gaps_destroy(&g);
}

static void test_several_gaps_stay_sorted(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    zkit__gaps_observe(g, s, 1, 1, false);
    zkit__gaps_observe(g, s, 1, 5, false); /* 2..4 */
    zkit__gaps_observe(g, s, 1, 6, false);
    zkit__gaps_observe(g, s, 1, 20, false); /* 7..19 */
    zkit__gaps_observe(g, s, 1, 22, false); /* 21 */
    s_assert_missing(s, 3, (uint64_t[]){2, 4, 7, 19, 21, 21});
    assert_int_equal(zkit__gaps_observe(g, s, 1, 21, false), ZKIT__GAPS_FILL);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 10, false), ZKIT__GAPS_FILL);
    s_assert_missing(s, 3, (uint64_t[]){2, 4, 7, 9, 11, 19});
    zkit__gaps_destroy(&g);
}

static void test_declare_lost_shapes(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    zkit__gaps_observe(g, s, 1, 1, false);
    zkit__gaps_observe(g, s, 1, 11, false); /* 2..10 */
    zkit__gaps_observe(g, s, 1, 21, false); /* 12..20 */
    zkit__gaps_observe(g, s, 1, 31, false); /* 22..30 */
    log.count = 0;

    /* inside one range: split it */
    zkit__gaps_declare_lost(g, s, 4, 6, ZKIT_LOST_EVICTED);
    s_assert_missing(s, 4, (uint64_t[]){2, 3, 7, 10, 12, 20, 22, 30});
    s_assert_event(&log, 0, ZKIT_STREAM_LOST, 4, 6);
    assert_int_equal(log.ev[0].reason, ZKIT_LOST_EVICTED);

    /* across ranges, over received seqs (11, 21 are not reported) */
    zkit__gaps_declare_lost(g, s, 9, 25, ZKIT_LOST_TIMEOUT);
    s_assert_missing(s, 3, (uint64_t[]){2, 3, 7, 8, 26, 30});
    s_assert_event(&log, 1, ZKIT_STREAM_LOST, 9, 10);
    s_assert_event(&log, 2, ZKIT_STREAM_LOST, 12, 20);
    s_assert_event(&log, 3, ZKIT_STREAM_LOST, 22, 25);
    assert_int_equal(s->counters.lost, 3 + 2 + 9 + 4);

    /* over nothing missing: no event */
    zkit__gaps_declare_lost(g, s, 11, 11, ZKIT_LOST_BAD);
    assert_int_equal(log.count, 4);

    /* above next: what was never seen; next moves past it */
    zkit__gaps_declare_lost(g, s, 26, 40, ZKIT_LOST_EVICTED);
    s_assert_missing(s, 2, (uint64_t[]){2, 3, 7, 8});
    s_assert_event(&log, 4, ZKIT_STREAM_LOST, 26, 30);
    s_assert_event(&log, 5, ZKIT_STREAM_LOST, 32, 40);
    assert_int_equal(s->next, 41);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 35, false), ZKIT__GAPS_DUPLICATE);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 41, false), ZKIT__GAPS_NEW);

    /* open-ended: reported, next left alone */
    zkit__gaps_declare_lost(g, s, 42, UINT64_MAX, ZKIT_LOST_RESTART);
    s_assert_event(&log, 6, ZKIT_STREAM_LOST, 42, UINT64_MAX);
    assert_int_equal(s->next, 42);
    uint64_t lost = s->counters.lost;
    assert_int_equal(lost, 18 + 5 + 9); /* the open-ended one is not counted */

    /* invalid ranges do nothing */
    zkit__gaps_declare_lost(g, s, 0, 5, ZKIT_LOST_BAD);
    zkit__gaps_declare_lost(g, s, 5, 4, ZKIT_LOST_BAD);
    assert_int_equal(log.count, 7);
    zkit__gaps_destroy(&g);
}

static void test_restart_by_epoch(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    zkit__gaps_observe(g, s, 100, 1, false);
    zkit__gaps_observe(g, s, 100, 5, false); /* 2..4 missing */
    log.count = 0;
    /* the publisher restarts (a newer epoch): seq 1 again, nothing lost of
       the new run; the old run's missing seqs can never come */
    assert_int_equal(zkit__gaps_observe(g, s, 200, 1, false), ZKIT__GAPS_NEW);
    s_assert_event(&log, 0, ZKIT_STREAM_LOST, 2, 4);
    assert_int_equal(log.ev[0].reason, ZKIT_LOST_RESTART);
    assert_int_equal(log.ev[1].kind, ZKIT_STREAM_RESTART);
    assert_int_equal(log.ev[1].epoch, 100);
    assert_int_equal(log.ev[1].new_epoch, 200);
    assert_int_equal(s->epoch, 200);
    assert_int_equal(s->next, 2);
    s_assert_missing(s, 0, NULL);
    assert_int_equal(s->counters.restarts, 1);

    /* a message of the old epoch arriving late is stale, not a duplicate */
    assert_int_equal(zkit__gaps_observe(g, s, 100, 6, false), ZKIT__GAPS_STALE);
    assert_int_equal(s->counters.stale, 1);

    /* a restart whose first messages were missed shows a gap from 1 */
    log.count = 0;
    assert_int_equal(zkit__gaps_observe(g, s, 300, 4, false), ZKIT__GAPS_GAP);
    assert_int_equal(log.ev[0].kind, ZKIT_STREAM_RESTART);
    s_assert_event(&log, 1, ZKIT_STREAM_GAP, 1, 3);
    assert_int_equal(log.ev[1].epoch, 300);
    zkit__gaps_destroy(&g);
}

static void test_restart_without_epoch(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    for (uint64_t q = 1; q <= 3; q++)
        zkit__gaps_observe(g, s, 0, q, false);
    /* seq 1 after 3, no epoch: read as a restart */
    assert_int_equal(zkit__gaps_observe(g, s, 0, 1, false), ZKIT__GAPS_NEW);
    assert_int_equal(log.count, 1);
    assert_int_equal(log.ev[0].kind, ZKIT_STREAM_RESTART);
    assert_int_equal(s->next, 2);
    /* but 1 again right after 1 is a duplicate (next is 2) */
    assert_int_equal(zkit__gaps_observe(g, s, 0, 1, false), ZKIT__GAPS_DUPLICATE);
    zkit__gaps_destroy(&g);
}

static void test_overflow_gives_up_oldest(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 3, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    zkit__gaps_observe(g, s, 1, 1, false);
    zkit__gaps_observe(g, s, 1, 3, false); /* 2 */
    zkit__gaps_observe(g, s, 1, 5, false); /* 4 */
    zkit__gaps_observe(g, s, 1, 7, false); /* 6 */
    assert_int_equal(s->nmissing, 3);
    log.count = 0;
    zkit__gaps_observe(g, s, 1, 9, false); /* 8: the oldest (2) is given up */
    s_assert_event(&log, 0, ZKIT_STREAM_GAP, 8, 8);
    s_assert_event(&log, 1, ZKIT_STREAM_LOST, 2, 2);
    assert_int_equal(log.ev[1].reason, ZKIT_LOST_OVERFLOW);
    s_assert_missing(s, 3, (uint64_t[]){4, 4, 6, 6, 8, 8});

    /* a split at the cap gives up the oldest too */
    zkit__gaps_t *g2 = zkit__gaps_new(10, 2, s_record, &log, NULL);
    zkit__gaps_stream_t *t = zkit__gaps_stream(g2, "t", true);
    zkit__gaps_observe(g2, t, 1, 1, false);
    zkit__gaps_observe(g2, t, 1, 3, false);  /* 2 */
    zkit__gaps_observe(g2, t, 1, 10, false); /* 4..9 */
    log.count = 0;
    assert_int_equal(zkit__gaps_observe(g2, t, 1, 6, false), ZKIT__GAPS_FILL);
    s_assert_event(&log, 0, ZKIT_STREAM_LOST, 2, 2);
    s_assert_missing(t, 2, (uint64_t[]){4, 5, 7, 9});
    zkit__gaps_destroy(&g2);
    zkit__gaps_destroy(&g);
}

static void test_extend_from_a_status(void **state)
{
    (void) state;
    s_log_t log = {0};
    zkit__gaps_t *g = zkit__gaps_new(10, 10, s_record, &log, NULL);
    zkit__gaps_stream_t *s = zkit__gaps_stream(g, "pub", true);
    assert_false(zkit__gaps_extend(g, s, 10)); /* nothing seen: no baseline */
    zkit__gaps_observe(g, s, 1, 1, false);
    zkit__gaps_observe(g, s, 1, 2, false);
    assert_false(zkit__gaps_extend(g, s, 2)); /* caught up */
    assert_false(zkit__gaps_extend(g, s, 1));
    assert_int_equal(log.count, 0);
    /* the source says it published up to 9: the tail 3..9 was missed */
    assert_true(zkit__gaps_extend(g, s, 9));
    s_assert_event(&log, 0, ZKIT_STREAM_GAP, 3, 9);
    s_assert_missing(s, 1, (uint64_t[]){3, 9});
    assert_int_equal(s->next, 10);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 3, true), ZKIT__GAPS_FILL);
    assert_int_equal(zkit__gaps_observe(g, s, 1, 10, false), ZKIT__GAPS_NEW);
    assert_false(zkit__gaps_extend(g, s, UINT64_MAX)); /* never a range to infinity */
    zkit__gaps_destroy(&g);
}

static void test_positions_and_independent_sources(void **state)
{
    (void) state;
    zkit__gaps_t *g = zkit__gaps_new(10, 10, NULL, NULL, NULL);
    zkit__gaps_stream_t *a = zkit__gaps_stream(g, "a", true);
    zkit__gaps_stream_t *b = zkit__gaps_stream(g, "b", true);
    zkit__gaps_observe(g, a, 1, 1, false);
    zkit__gaps_observe(g, b, 1, 1, false);
    zkit__gaps_observe(g, a, 1, 4, false);
    assert_int_equal(a->nmissing, 1);
    assert_int_equal(b->nmissing, 0);
    assert_int_equal(zkit__gaps_observe(g, b, 1, 2, false), ZKIT__GAPS_NEW);

    /* a resume position: the next seq wanted, nothing missing */
    zkit__gaps_stream_t *c = zkit__gaps_stream(g, "c", true);
    assert_int_equal(zkit__gaps_low_water(c), 0);
    zkit__gaps_set_position(c, 9, 50);
    assert_int_equal(zkit__gaps_low_water(c), 50);
    assert_int_equal(zkit__gaps_observe(g, c, 9, 49, true), ZKIT__GAPS_DUPLICATE);
    assert_int_equal(zkit__gaps_observe(g, c, 9, 50, true), ZKIT__GAPS_NEW);
    assert_int_equal(zkit__gaps_observe(g, c, 9, 60, false), ZKIT__GAPS_GAP);
    assert_int_equal(zkit__gaps_low_water(c), 51);
    zkit__gaps_destroy(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_lookup),
        cmocka_unit_test(test_in_order_and_late_join),
        cmocka_unit_test(test_gap_then_fills),
        cmocka_unit_test(test_several_gaps_stay_sorted),
        cmocka_unit_test(test_declare_lost_shapes),
        cmocka_unit_test(test_restart_by_epoch),
        cmocka_unit_test(test_restart_without_epoch),
        cmocka_unit_test(test_overflow_gives_up_oldest),
        cmocka_unit_test(test_extend_from_a_status),
        cmocka_unit_test(test_positions_and_independent_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
