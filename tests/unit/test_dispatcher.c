/*  test_dispatcher: the dispatch core's promises, with time driven by the test.

    Every test injects now_ms, so deadlines and liveness boundaries are hit to
    the millisecond without sleeping. The last test drives 100,000 random
    operations against a model and checks the invariants after every step.

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

/* A routing id from a string literal: P("A") is the pair ("A", 1).          */
#define P(name) name, sizeof name - 1

/* ---- fixtures ----------------------------------------------------------- */

static int s_freed; /* payloads the dispatcher disposed of */

static void s_free(void *payload, void *arg)
{
    (void) arg;
    s_freed++;
    free(payload);
}

/* Payloads carry their item number so a test can tell what it was given.  */
static void *s_payload(int n)
{
    int *p = malloc(sizeof *p);
    assert_non_null(p);
    *p = n;
    return p;
}

/* UUIDv7-like ids: a fixed millisecond timestamp, n in the random part.    */
static const uint8_t *s_id(int n)
{
    static uint8_t ids[64][16];
    assert_true(n >= 0 && n < 64);
    static const uint8_t prefix[8] = {0x01, 0x8f, 0x3a, 0x5c, 0x22, 0x10, 0x70, 0x00};
    memcpy(ids[n], prefix, 8);
    memset(ids[n] + 8, 0, 8);
    ids[n][15] = (uint8_t) n;
    return ids[n];
}

static zkit__dispatcher_t *s_new(zkit__dispatcher_opts_t opts)
{
    opts.payload_free = s_free;
    s_freed = 0;
    zkit__dispatcher_t *d = zkit__dispatcher_new(&opts);
    assert_non_null(d);
    return d;
}

static void s_submit(zkit__dispatcher_t *d, int n, int64_t now)
{
    void *payload = s_payload(n);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(n), payload, NEVER, now), 0);
}

/* Dispatches one job and returns its item number; fails when there is none. */
static int s_next(zkit__dispatcher_t *d, int64_t now, zkit__dispatcher_job_t *job)
{
    assert_true(zkit__dispatcher_next(d, now, job));
    assert_int_equal(memcmp(job->id, s_id(*(int *) job->payload), 16), 0);
    return *(int *) job->payload;
}

static bool s_to(const zkit__dispatcher_job_t *job, const char *peer)
{
    return job->peer_size == strlen(peer) && memcmp(job->peer, peer, job->peer_size) == 0;
}

static uint32_t s_in_flight(zkit__dispatcher_t *d, const char *peer)
{
    zkit__dispatcher_peer_info_t info;
    assert_int_equal(zkit__dispatcher_peer_info(d, peer, strlen(peer), &info), 0);
    return info.in_flight;
}

static const zkit__dispatcher_counters_t *s_counters(zkit__dispatcher_t *d)
{
    return zkit__dispatcher_counters(d);
}

/* The two identities the header promises.                                  */
static void s_check_identities(zkit__dispatcher_t *d)
{
    const zkit__dispatcher_counters_t *c = s_counters(d);
    assert_int_equal(c->submitted, c->queued + c->in_flight + c->acked + c->dead_lettered);
    assert_int_equal(c->dispatched, c->in_flight + (c->acked - c->late_acks) + c->requeued +
                                        c->dead_lettered_by[ZKIT__DISPATCHER_NACKED] +
                                        c->dead_lettered_by[ZKIT__DISPATCHER_PEER_DIED] +
                                        c->dead_lettered_by[ZKIT__DISPATCHER_TIMED_OUT]);
    uint64_t requeued = 0, dead = 0;
    for (int r = 0; r < ZKIT__DISPATCHER_REASONS_; r++) {
        requeued += c->requeued_by[r];
        dead += c->dead_lettered_by[r];
    }
    assert_int_equal(c->requeued, requeued);
    assert_int_equal(c->dead_lettered, dead);
}

/* ---- credit and fairness ------------------------------------------------- */

static void test_credit_window_is_respected(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 2, T0), 0);
    for (int i = 0; i < 5; i++)
        s_submit(d, i, T0);

    zkit__dispatcher_job_t job;
    assert_int_equal(s_next(d, T0, &job), 0);
    assert_true(s_to(&job, "A"));
    assert_int_equal(s_next(d, T0, &job), 1);
    /* A holds its window of 2: a third item must wait, however often asked. */
    for (int i = 0; i < 3; i++)
        assert_false(zkit__dispatcher_next(d, T0, &job));
    assert_int_equal(s_in_flight(d, "A"), 2);
    assert_int_equal(s_counters(d)->queued, 3);

    /* An ack frees exactly one credit.                                      */
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(0), T0 + 1, NULL), 0);
    assert_int_equal(s_in_flight(d, "A"), 1);
    assert_int_equal(s_next(d, T0 + 1, &job), 2);
    assert_false(zkit__dispatcher_next(d, T0 + 1, &job));
    assert_int_equal(s_in_flight(d, "A"), 2);
    assert_int_equal(s_freed, 1);
    zkit__dispatcher_destroy(&d);
    assert_null(d);
    assert_int_equal(s_freed, 5);
}

/*  Three peers, window 1: work goes round in the order they became ready,
    then in the order they finished (the Guide's LRU queue).                */
static void test_lru_fairness_across_three_peers(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("C"), 1, T0), 0);
    for (int i = 0; i < 9; i++)
        s_submit(d, i, T0);

    zkit__dispatcher_job_t job;
    const char *first[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_next(d, T0, &job), i);
        assert_true(s_to(&job, first[i]));
    }
    assert_false(zkit__dispatcher_next(d, T0, &job));
    /* They finish C, A, B: that is the order they get work again.           */
    assert_int_equal(zkit__dispatcher_ack(d, P("C"), s_id(2), T0 + 1, NULL), 0);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(0), T0 + 2, NULL), 0);
    assert_int_equal(zkit__dispatcher_ack(d, P("B"), s_id(1), T0 + 3, NULL), 0);
    const char *second[] = {"C", "A", "B"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_next(d, T0 + 3, &job), 3 + i);
        assert_true(s_to(&job, second[i]));
    }
    zkit__dispatcher_destroy(&d);

    /* With windows of 2, peers still take turns instead of one filling up.  */
    d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 2, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 2, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("C"), 2, T0), 0);
    for (int i = 0; i < 9; i++)
        s_submit(d, i, T0);
    const char *turns[] = {"A", "B", "C", "A", "B", "C"};
    for (int i = 0; i < 6; i++) {
        s_next(d, T0, &job);
        assert_true(s_to(&job, turns[i]));
    }
    assert_false(zkit__dispatcher_next(d, T0, &job));
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_in_flight(d, first[i]), 2);
    zkit__dispatcher_destroy(&d);
}

/*  A refreshed window takes effect at once; lowering it takes nothing back,
    and a refresh of an available peer does not cost it its turn.          */
static void test_window_refresh(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 3, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 3, T0), 0);
    for (int i = 0; i < 6; i++)
        s_submit(d, i, T0);
    zkit__dispatcher_job_t job;
    s_next(d, T0, &job);
    assert_true(s_to(&job, "A"));
    s_next(d, T0, &job);
    assert_true(s_to(&job, "B"));
    /* A refreshes (same window): it stays first in line.                    */
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 3, T0 + 1), 0);
    s_next(d, T0 + 1, &job);
    assert_true(s_to(&job, "A"));
    /* A pauses with window 0: everything goes to B, A keeps its 2.          */
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 0, T0 + 2), 0);
    s_next(d, T0 + 2, &job);
    assert_true(s_to(&job, "B"));
    s_next(d, T0 + 2, &job);
    assert_true(s_to(&job, "B"));
    assert_false(zkit__dispatcher_next(d, T0 + 2, &job));
    assert_int_equal(s_in_flight(d, "A"), 2);
    assert_int_equal(s_counters(d)->peers_available, 0);
    /* A resumes.                                                             */
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 3, T0 + 3), 0);
    s_next(d, T0 + 3, &job);
    assert_true(s_to(&job, "A"));
    assert_int_equal(s_in_flight(d, "A"), 3);
    zkit__dispatcher_destroy(&d);
}

/* ---- acks ---------------------------------------------------------------- */

/*  With payload_p the payload comes back and is not freed; without, the
    destructor runs exactly once.                                           */
static void test_ack_hands_back_or_frees_payload(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 2, T0), 0);
    s_submit(d, 1, T0);
    s_submit(d, 2, T0);
    zkit__dispatcher_job_t job;
    s_next(d, T0, &job);
    void *sent = job.payload;
    s_next(d, T0, &job);

    void *back = NULL;
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0, &back), 0);
    assert_ptr_equal(back, sent);
    assert_int_equal(s_freed, 0);
    free(back);
    assert_int_equal(zkit__dispatcher_ack(d, NULL, 0, s_id(2), T0, NULL), 0);
    assert_int_equal(s_freed, 1);
    assert_int_equal(s_counters(d)->acked, 2);
    assert_int_equal(s_counters(d)->in_flight, 0);
    zkit__dispatcher_destroy(&d);
    assert_int_equal(s_freed, 1);
}

static void test_duplicate_submit_is_refused(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    s_submit(d, 1, T0);
    void *dup = s_payload(1);
    errno = 0;
    assert_int_equal(zkit__dispatcher_submit(d, s_id(1), dup, NEVER, T0), -1);
    assert_int_equal(errno, EEXIST);
    /* Refused means the caller keeps its payload and nothing was counted.   */
    assert_int_equal(s_freed, 0);
    free(dup);
    assert_int_equal(s_counters(d)->submitted, 1);
    assert_int_equal(s_counters(d)->queued, 1);

    /* Still refused while in flight; accepted again once retired.           */
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    zkit__dispatcher_job_t job;
    s_next(d, T0, &job);
    dup = s_payload(1);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(1), dup, NEVER, T0), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0, NULL), 0);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(1), dup, NEVER, T0), 0);
    assert_int_equal(s_counters(d)->submitted, 2);
    zkit__dispatcher_destroy(&d);
    assert_int_equal(s_freed, 2);
}

/*  Acks for ids that are not live are counted and change nothing, however
    many arrive (they are not remembered, so memory cannot grow).           */
static void test_unknown_ack_is_counted_and_harmless(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    s_submit(d, 1, T0);
    s_submit(d, 2, T0);
    zkit__dispatcher_job_t job;
    s_next(d, T0, &job);

    for (int i = 0; i < 100000; i++) {
        void *back = &back;
        errno = 0;
        assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(9 + i % 50), T0, &back), -1);
        assert_int_equal(errno, ENOENT);
        assert_null(back);
    }
    /* The real ack, then the same ack again: the second is a duplicate.     */
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0, NULL), 0);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0, NULL), -1);
    assert_int_equal(errno, ENOENT);

    const zkit__dispatcher_counters_t *c = s_counters(d);
    assert_int_equal(c->duplicate_acks, 100001);
    assert_int_equal(c->acked, 1);
    assert_int_equal(c->queued, 1);
    assert_int_equal(s_freed, 1);
    /* An ack for an item never sent is refused: nobody can have done it.    */
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 0, T0), 0);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(2), T0, NULL), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(c->rejected_acks, 1);
    assert_int_equal(c->queued, 1);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
}

/*  A's ack arrives after A was presumed dead: the requeued item is retired
    and never dispatched again; if it had already gone to B, B's credit is
    freed and B's own ack later counts as a duplicate.                      */
static void test_late_ack_retires_requeued_item(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    s_submit(d, 1, T0);
    zkit__dispatcher_job_t job;
    s_next(d, T0, &job);
    /* A silent for 3001 ms: presumed dead, item 1 back in the queue.        */
    zkit__dispatcher_tick(d, T0 + 3001);
    zkit__dispatcher_item_info_t info;
    assert_int_equal(zkit__dispatcher_find(d, s_id(1), &info), 0);
    assert_int_equal(info.state, ZKIT__DISPATCHER_QUEUED);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0 + 3002, NULL), 0);
    assert_int_equal(zkit__dispatcher_find(d, s_id(1), &info), -1);
    assert_int_equal(s_counters(d)->late_acks, 1);
    assert_int_equal(s_counters(d)->queued, 0);
    assert_int_equal(s_freed, 1);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 5, T0 + 3002), 0);
    assert_false(zkit__dispatcher_next(d, T0 + 3002, &job));

    /* Item 2 goes to A, A dies, it goes to B, then A's ack arrives.         */
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("B"), T0 + 3003), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0 + 3003), 0);
    s_submit(d, 2, T0 + 3003);
    s_next(d, T0 + 3003, &job);
    assert_true(s_to(&job, "A"));
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("A"), T0 + 3004), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 1, T0 + 3004), 0);
    s_next(d, T0 + 3004, &job);
    assert_true(s_to(&job, "B"));
    assert_int_equal(job.attempts, 2);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(2), T0 + 3005, NULL), 0);
    assert_int_equal(s_in_flight(d, "B"), 0);
    assert_int_equal(zkit__dispatcher_ack(d, P("B"), s_id(2), T0 + 3006, NULL), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(s_counters(d)->duplicate_acks, 1);
    assert_int_equal(s_freed, 2);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
}

/* ---- liveness and deadlines ----------------------------------------------- */

/*  heartbeat 1000 x liveness 3: silent for exactly 3000 ms is still alive,
    3001 ms is dead, and its work goes to another peer as attempt 2.        */
static void test_liveness_expiry_boundary(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    s_submit(d, 1, T0);
    zkit__dispatcher_job_t job;
    s_next(d, T0, &job);
    assert_int_equal(job.attempts, 1);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 1, T0 + 2500), 0);

    assert_int_equal(zkit__dispatcher_tick(d, T0 + 2999), T0 + 3001);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 3000), T0 + 3001);
    assert_int_equal(s_in_flight(d, "A"), 1);
    assert_int_equal(s_counters(d)->peers, 2);

    zkit__dispatcher_tick(d, T0 + 3001);
    zkit__dispatcher_peer_info_t pinfo;
    assert_int_equal(zkit__dispatcher_peer_info(d, P("A"), &pinfo), -1);
    assert_int_equal(errno, ENOENT);
    const zkit__dispatcher_counters_t *c = s_counters(d);
    assert_int_equal(c->peers_expired, 1);
    assert_int_equal(c->peers, 1);
    assert_int_equal(c->requeued_by[ZKIT__DISPATCHER_PEER_DIED], 1);
    assert_int_equal(s_next(d, T0 + 3001, &job), 1);
    assert_true(s_to(&job, "B"));
    assert_int_equal(job.attempts, 2);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
}

/*  Any sign of life restarts the clock; next() never hands work to a peer
    already overdue, even if tick() was not called.                         */
static void test_peer_seen_postpones_expiry(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_seen(d, P("A"), T0 + 2000), 0);
    zkit__dispatcher_tick(d, T0 + 4000);
    assert_int_equal(s_counters(d)->peers, 1);
    /* An ack is traffic too.                                                 */
    s_submit(d, 1, T0 + 4000);
    zkit__dispatcher_job_t job;
    s_next(d, T0 + 4000, &job);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0 + 4500, NULL), 0);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 7500), T0 + 7501);
    assert_int_equal(s_counters(d)->peers, 1);

    /* Overdue at 7501: next() expires A instead of handing it work.         */
    s_submit(d, 2, T0 + 7501);
    assert_false(zkit__dispatcher_next(d, T0 + 7501, &job));
    assert_int_equal(s_counters(d)->peers, 0);
    assert_int_equal(s_counters(d)->queued, 1);
    assert_int_equal(zkit__dispatcher_peer_seen(d, P("A"), T0 + 7502), -1);
    assert_int_equal(errno, ENOENT);
    zkit__dispatcher_destroy(&d);
}

/*  An attempt not acked within attempt_timeout_ms fails at its deadline, not
    a millisecond earlier, frees its credit and is retried first.           */
static void test_attempt_deadline_requeues(void **state)
{
    (void) state;
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.attempt_timeout_ms = 500;
    opts.heartbeat_ms = 0; /* liveness off: only the deadline acts here */
    zkit__dispatcher_t *d = s_new(opts);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    s_submit(d, 1, T0);
    s_submit(d, 2, T0);
    zkit__dispatcher_job_t job;
    assert_int_equal(s_next(d, T0, &job), 1);
    assert_int_equal(job.deadline_ms, T0 + 500);

    assert_int_equal(zkit__dispatcher_tick(d, T0 + 499), T0 + 500);
    assert_false(zkit__dispatcher_next(d, T0 + 499, &job));
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 500), NEVER);
    assert_int_equal(s_counters(d)->requeued_by[ZKIT__DISPATCHER_TIMED_OUT], 1);
    assert_int_equal(s_in_flight(d, "A"), 0);
    /* The retry goes before item 2, which was queued first.                 */
    assert_int_equal(s_next(d, T0 + 500, &job), 1);
    assert_int_equal(job.attempts, 2);
    assert_int_equal(job.deadline_ms, T0 + 1000);
    /* The peer's slow ack of the first attempt still retires it.            */
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0 + 700, NULL), 0);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 700), NEVER);
    assert_int_equal(s_next(d, T0 + 700, &job), 2);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
}

/*  Failed attempts go ahead of fresh items, in the order they failed; a
    dead peer's items keep the order they were dispatched in.               */
static void test_requeued_items_go_first(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 3, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 1, T0), 0);
    for (int i = 1; i <= 6; i++)
        s_submit(d, i, T0);
    zkit__dispatcher_job_t job;
    for (int i = 1; i <= 4; i++)
        s_next(d, T0, &job); /* A: 1, 3, 4   B: 2 */
    assert_int_equal(s_in_flight(d, "A"), 3);
    assert_int_equal(zkit__dispatcher_nack(d, P("B"), s_id(2), T0 + 1), 0);
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("A"), T0 + 2), 0);
    s_submit(d, 7, T0 + 2);

    assert_int_equal(zkit__dispatcher_peer_ready(d, P("C"), 10, T0 + 3), 0);
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("B"), T0 + 3), 0);
    int expect[] = {2, 1, 3, 4, 5, 6, 7};
    for (int i = 0; i < 7; i++)
        assert_int_equal(s_next(d, T0 + 3, &job), expect[i]);
    assert_false(zkit__dispatcher_next(d, T0 + 3, &job));
    assert_int_equal(s_counters(d)->peers_gone, 2);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
}

/* ---- failures and dead letters ---------------------------------------------- */

static void test_nack_requeues_then_dead_letters(void **state)
{
    (void) state;
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.max_attempts = 3;
    zkit__dispatcher_t *d = s_new(opts);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 1, T0), 0);
    s_submit(d, 1, T0);
    zkit__dispatcher_job_t job;
    zkit__dispatcher_dead_t dead;
    for (uint32_t attempt = 1; attempt <= 3; attempt++) {
        assert_int_equal(s_next(d, T0, &job), 1);
        assert_int_equal(job.attempts, attempt);
        const char *holder = s_to(&job, "A") ? "A" : "B";
        const char *other = s_to(&job, "A") ? "B" : "A";
        /* A nack from a peer that does not hold it is stale: no effect.     */
        assert_int_equal(zkit__dispatcher_nack(d, other, 1, s_id(1), T0), -1);
        assert_int_equal(errno, ESTALE);
        assert_int_equal(zkit__dispatcher_nack(d, holder, 1, s_id(1), T0), 0);
        assert_int_equal(zkit__dispatcher_next_dead(d, &dead), attempt == 3);
    }
    assert_memory_equal(dead.id, s_id(1), 16);
    assert_int_equal(dead.attempts, 3);
    assert_int_equal(dead.reason, ZKIT__DISPATCHER_NACKED);
    assert_string_equal(zkit__dispatcher_reason_name(dead.reason), "NACKED");
    assert_int_equal(*(int *) dead.payload, 1);
    free(dead.payload);
    assert_false(zkit__dispatcher_next(d, T0, &job));
    assert_int_equal(zkit__dispatcher_nack(d, P("A"), s_id(1), T0), -1);
    assert_int_equal(errno, ENOENT);

    const zkit__dispatcher_counters_t *c = s_counters(d);
    assert_int_equal(c->nacked, 3);
    assert_int_equal(c->requeued_by[ZKIT__DISPATCHER_NACKED], 2);
    assert_int_equal(c->dead_lettered_by[ZKIT__DISPATCHER_NACKED], 1);
    assert_int_equal(c->stale_nacks, 4);
    assert_int_equal(c->dead_pending, 0);
    assert_int_equal(s_in_flight(d, "A") + s_in_flight(d, "B"), 0);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
    assert_int_equal(s_freed, 0);
}

/*  A poison item kills whichever worker takes it (it stops heartbeating).
    It is dead-lettered as PEER_DIED after max_attempts while the other items
    keep flowing to the surviving and replacement workers.                  */
static void test_poison_item_is_dead_lettered(void **state)
{
    (void) state;
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.max_attempts = 3;
    zkit__dispatcher_t *d = s_new(opts);
    enum { WORKERS = 3, ITEMS = 40, POISON = 13 };
    char names[16][16];
    bool alive[16] = {false};
    int spawned = 0;
    for (; spawned < WORKERS; spawned++) {
        snprintf(names[spawned], sizeof names[0], "w%d", spawned);
        alive[spawned] = true;
        assert_int_equal(zkit__dispatcher_peer_ready(d, names[spawned], 2, 1, T0), 0);
    }
    for (int i = 0; i < ITEMS; i++)
        s_submit(d, i, T0);

    int acked = 0;
    zkit__dispatcher_dead_t dead;
    bool poison_dead = false;
    for (int64_t now = T0; now < T0 + 60000 && !poison_dead; now += 100) {
        for (int w = 0; w < spawned; w++)
            if (alive[w])
                assert_int_equal(zkit__dispatcher_peer_seen(d, names[w], 2, now), 0);
        zkit__dispatcher_tick(d, now);
        zkit__dispatcher_job_t job;
        while (zkit__dispatcher_next(d, now, &job)) {
            int w = job.peer[1] - '0';
            if (*(int *) job.payload == POISON) {
                alive[w] = false; /* crashed: silent from now on */
                assert_true(spawned < 16);
                snprintf(names[spawned], sizeof names[0], "w%d", spawned);
                alive[spawned] = true;
                assert_int_equal(zkit__dispatcher_peer_ready(d, names[spawned], 2, 1, now), 0);
                spawned++;
            }
            else {
                assert_int_equal(zkit__dispatcher_ack(d, job.peer, 2, job.id, now, NULL), 0);
                acked++;
            }
        }
        if (zkit__dispatcher_next_dead(d, &dead)) {
            assert_int_equal(*(int *) dead.payload, POISON);
            free(dead.payload);
            poison_dead = true;
        }
    }
    assert_true(poison_dead);
    assert_int_equal(dead.reason, ZKIT__DISPATCHER_PEER_DIED);
    assert_int_equal(dead.attempts, 3);
    assert_int_equal(acked, ITEMS - 1);
    const zkit__dispatcher_counters_t *c = s_counters(d);
    assert_int_equal(c->peers_expired, 3);
    assert_int_equal(c->requeued_by[ZKIT__DISPATCHER_PEER_DIED], 2);
    assert_int_equal(c->dead_lettered, 1);
    assert_int_equal(c->queued + c->in_flight, 0);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
}

/*  An item past its expiry is dead-lettered as EXPIRED, never dispatched:
    while waiting (at its expiry, not before), at submit, and when it comes
    back from a failed attempt after its expiry.                            */
static void test_expired_item_is_dead_lettered(void **state)
{
    (void) state;
    zkit__dispatcher_t *d = s_new((zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT);
    void *payload = s_payload(1);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(1), payload, T0 + 1000, T0), 0);
    assert_int_equal(zkit__dispatcher_next_due(d), T0 + 1000);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 999), T0 + 1000);
    assert_int_equal(s_counters(d)->queued, 1);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 1000), NEVER);
    zkit__dispatcher_dead_t dead;
    assert_true(zkit__dispatcher_next_dead(d, &dead));
    assert_int_equal(dead.reason, ZKIT__DISPATCHER_EXPIRED);
    assert_int_equal(dead.attempts, 0);
    assert_ptr_equal(dead.payload, payload);
    free(dead.payload);

    /* Already expired when submitted: accepted, and dead at once.           */
    assert_int_equal(zkit__dispatcher_submit(d, s_id(2), s_payload(2), T0 + 1000, T0 + 1000), 0);
    assert_true(zkit__dispatcher_next_dead(d, &dead));
    assert_int_equal(*(int *) dead.payload, 2);
    free(dead.payload);

    /* Expires while in flight: the attempt runs on; when it fails the item
       is not dispatched again.                                              */
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0 + 1000), 0);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(3), s_payload(3), T0 + 1500, T0 + 1000), 0);
    zkit__dispatcher_job_t job;
    assert_int_equal(s_next(d, T0 + 1000, &job), 3);
    zkit__dispatcher_tick(d, T0 + 1600);
    assert_int_equal(s_counters(d)->in_flight, 1);
    assert_int_equal(zkit__dispatcher_nack(d, P("A"), s_id(3), T0 + 1600), 0);
    assert_false(zkit__dispatcher_next(d, T0 + 1600, &job));
    assert_true(zkit__dispatcher_next_dead(d, &dead));
    assert_int_equal(dead.reason, ZKIT__DISPATCHER_EXPIRED);
    assert_int_equal(dead.attempts, 1);
    free(dead.payload);
    assert_false(zkit__dispatcher_next_dead(d, &dead));
    assert_int_equal(s_counters(d)->dead_lettered_by[ZKIT__DISPATCHER_EXPIRED], 3);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
    assert_int_equal(s_freed, 0);
}

/*  next_due is the earliest of attempt deadlines, queued expiries and peer
    liveness expiries, and moves as they change.                            */
static void test_tick_returns_next_deadline(void **state)
{
    (void) state;
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.attempt_timeout_ms = 500;
    zkit__dispatcher_t *d = s_new(opts);
    assert_int_equal(zkit__dispatcher_tick(d, T0), NEVER);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    assert_int_equal(zkit__dispatcher_next_due(d), T0 + 3001);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(1), s_payload(1), T0 + 2000, T0), 0);
    assert_int_equal(zkit__dispatcher_next_due(d), T0 + 2000);
    s_submit(d, 2, T0);
    zkit__dispatcher_job_t job;
    assert_int_equal(s_next(d, T0 + 100, &job), 1);
    /* In flight, item 1's deadline replaces its expiry as its timer.        */
    assert_int_equal(zkit__dispatcher_next_due(d), T0 + 600);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(1), T0 + 200, NULL), 0);
    /* The ack was traffic: A's expiry moved to 200 + 3001.                  */
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 200), T0 + 3201);
    assert_int_equal(s_next(d, T0 + 300, &job), 2);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 300), T0 + 800);
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("A"), T0 + 400), 0);
    assert_int_equal(zkit__dispatcher_tick(d, T0 + 400), NEVER);
    zkit__dispatcher_destroy(&d);
    assert_int_equal(s_freed, 2);
}

/* ---- counters, limits, arguments, lifetime --------------------------------- */

static void test_counters_agree_with_traffic(void **state)
{
    (void) state;
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.max_attempts = 2;
    opts.attempt_timeout_ms = 1000;
    zkit__dispatcher_t *d = s_new(opts);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 2, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("B"), 2, T0), 0);
    for (int i = 0; i < 8; i++)
        s_submit(d, i, T0);
    zkit__dispatcher_job_t job;
    for (int i = 0; i < 4; i++)
        s_next(d, T0, &job); /* A: 0, 2   B: 1, 3 */
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(0), T0, NULL), 0);
    assert_int_equal(zkit__dispatcher_nack(d, P("B"), s_id(1), T0), 0);
    assert_int_equal(zkit__dispatcher_ack(d, P("A"), s_id(0), T0, NULL), -1);
    assert_int_equal(zkit__dispatcher_nack(d, P("A"), s_id(3), T0), -1);
    /* A: 2, 1(att 2)   B: 3, 4 */
    s_next(d, T0, &job);
    s_next(d, T0, &job);
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("A"), T0 + 10), 0);
    /* 2 requeued, 1 dead (PEER_DIED, 2 attempts). B's 3 and 4 time out.     */
    zkit__dispatcher_tick(d, T0 + 1000);

    const zkit__dispatcher_counters_t *c = s_counters(d);
    assert_int_equal(c->submitted, 8);
    assert_int_equal(c->dispatched, 6);
    assert_int_equal(c->acked, 1);
    assert_int_equal(c->nacked, 1);
    assert_int_equal(c->duplicate_acks, 1);
    assert_int_equal(c->stale_nacks, 1);
    assert_int_equal(c->requeued_by[ZKIT__DISPATCHER_NACKED], 1);
    assert_int_equal(c->requeued_by[ZKIT__DISPATCHER_PEER_DIED], 1);
    assert_int_equal(c->requeued_by[ZKIT__DISPATCHER_TIMED_OUT], 2);
    assert_int_equal(c->requeued, 4);
    assert_int_equal(c->dead_lettered_by[ZKIT__DISPATCHER_PEER_DIED], 1);
    assert_int_equal(c->dead_lettered, 1);
    assert_int_equal(c->dead_pending, 1);
    assert_int_equal(c->peers_gone, 1);
    assert_int_equal(c->peers, 1);
    assert_int_equal(c->peers_available, 1);
    assert_int_equal(c->in_flight, 0);
    assert_int_equal(c->queued, 6);
    s_check_identities(d);
    zkit__dispatcher_destroy(&d);
    assert_int_equal(s_freed, 8); /* 1 acked, 6 queued, 1 undrained dead letter */
}

static void test_arguments_and_limits(void **state)
{
    (void) state;
    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.liveness = 0;
    errno = 0;
    assert_null(zkit__dispatcher_new(&opts));
    assert_int_equal(errno, EINVAL);

    opts = (zkit__dispatcher_opts_t) ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.max_items = 2;
    zkit__dispatcher_t *d = s_new(opts);
    char big[256];
    memset(big, 'x', sizeof big);
    assert_int_equal(zkit__dispatcher_peer_ready(d, NULL, 1, 1, T0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit__dispatcher_peer_ready(d, big, 0, 1, T0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit__dispatcher_peer_ready(d, big, 256, 1, T0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit__dispatcher_peer_ready(d, big, 255, 1, T0), 0);
    assert_int_equal(zkit__dispatcher_peer_gone(d, P("nobody"), T0), -1);
    assert_int_equal(errno, ENOENT);

    /* max_items counts dead letters not yet drained: memory stays bounded.  */
    s_submit(d, 1, T0);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(2), s_payload(2), T0, T0), 0); /* dead */
    void *payload = s_payload(3);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(3), payload, NEVER, T0), -1);
    assert_int_equal(errno, ENOBUFS);
    zkit__dispatcher_dead_t dead;
    assert_true(zkit__dispatcher_next_dead(d, &dead));
    free(dead.payload);
    assert_int_equal(zkit__dispatcher_submit(d, s_id(3), payload, NEVER, T0), 0);

    /* Time never runs backwards inside: an older now_ms counts as the last. */
    zkit__dispatcher_tick(d, T0 + 500);
    assert_int_equal(zkit__dispatcher_peer_ready(d, P("A"), 1, T0), 0);
    zkit__dispatcher_peer_info_t info;
    assert_int_equal(zkit__dispatcher_peer_info(d, P("A"), &info), 0);
    assert_int_equal(info.last_seen_ms, T0 + 500);
    assert_int_equal(info.expires_at_ms, T0 + 3501);
    zkit__dispatcher_destroy(&d);
    zkit__dispatcher_destroy(&d); /* safe twice */
    zkit__dispatcher_destroy(NULL);
    assert_int_equal(s_freed, 2);
}

/* ---- randomized property test -------------------------------------------- */

enum { R_PEERS = 5, R_IDS = 1000, R_STEPS = 100000, R_MAX_ATTEMPTS = 4 };

static uint64_t s_rng;

static uint32_t s_rand(uint32_t n)
{
    /* xorshift64*: fast, seeded, reproducible. */
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (uint32_t) ((s_rng * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

typedef struct {
    bool live;
    uint32_t serial; /* payload identity of this submission         */
    uint32_t attempts;
    int64_t expires_at;
} r_item_t;

typedef struct {
    bool registered;
    uint32_t window;
    int64_t last_seen;
} r_peer_t;

typedef struct {
    int64_t now;
    r_item_t items[R_IDS];
    r_peer_t peers[R_PEERS];
    uint8_t *released; /* per serial: times its payload was released   */
    uint32_t serials;
    uint64_t released_total;
    uint64_t submitted, dispatched, acked, dead, unknown_acks;
    uint32_t recent[32]; /* ids dispatched lately: likely still in flight */
    uint32_t recent_next;
    /* liveness expiries not drained yet (next_expired), in model order    */
    struct {
        uint32_t peer;
        int64_t last_seen, at;
    } expired[64];
    uint32_t nexpired;
    uint64_t expired_drained, expired_came_back;
    uint32_t step;
} r_model_t;

static r_model_t *s_model;

static void r_release(uint32_t serial)
{
    s_model->released[serial]++;
    s_model->released_total++;
    assert_int_equal(s_model->released[serial], 1);
}

static void r_free(void *payload, void *arg)
{
    (void) arg;
    r_release(*(uint32_t *) payload);
    free(payload);
}

static void r_id(uint8_t id[16], uint32_t n)
{
    memset(id, 0, 16);
    id[0] = 0x01;
    id[5] = 0x42;
    id[6] = 0x70;
    memcpy(id + 12, &n, 4);
}

static void r_rid(char rid[16], uint32_t p)
{
    snprintf(rid, 16, "peer-%u", p);
}

/* Mirrors liveness: what next() and tick() do to peers before anything.   */
static void r_expire_peers(void)
{
    for (uint32_t p = 0; p < R_PEERS; p++)
        if (s_model->peers[p].registered && s_model->now > s_model->peers[p].last_seen + 300) {
            s_model->peers[p].registered = false;
            assert_true(s_model->nexpired < 64);
            s_model->expired[s_model->nexpired].peer = p;
            s_model->expired[s_model->nexpired].last_seen = s_model->peers[p].last_seen;
            s_model->expired[s_model->nexpired++].at = s_model->now;
        }
}

/* Drains the expiry records: one per model expiry, the same peer, last
   sign of life and time, a peer's records in the order it expired, and
   registered exactly when the model has it back. The dispatcher orders a
   call's expiries by liveness, the model by peer number: a record is matched
   to the first pending expiry of its peer.                                  */
static void r_drain_expired(zkit__dispatcher_t *d)
{
    zkit__dispatcher_expired_t rec;
    int64_t last_at = INT64_MIN;
    while (zkit__dispatcher_next_expired(d, &rec)) {
        assert_true(rec.peer_size == 6 && memcmp(rec.peer, "peer-", 5) == 0);
        uint32_t p = (uint32_t) (rec.peer[5] - '0');
        uint32_t i = 0;
        while (i < s_model->nexpired && s_model->expired[i].peer != p)
            i++;
        assert_true(i < s_model->nexpired);
        assert_int_equal(rec.last_seen_ms, s_model->expired[i].last_seen);
        assert_int_equal(rec.expired_ms, s_model->expired[i].at);
        assert_true(rec.expired_ms >= last_at);
        last_at = rec.expired_ms;
        assert_int_equal(rec.registered, s_model->peers[p].registered);
        s_model->expired_came_back += rec.registered;
        s_model->expired_drained++;
        memmove(&s_model->expired[i], &s_model->expired[i + 1],
                (s_model->nexpired - i - 1) * sizeof s_model->expired[0]);
        s_model->nexpired--;
    }
    assert_int_equal(s_model->nexpired, 0);
}

static void r_touch(uint32_t p)
{
    if (s_model->peers[p].registered)
        s_model->peers[p].last_seen = s_model->now;
}

static void r_drain_dead(zkit__dispatcher_t *d)
{
    zkit__dispatcher_dead_t dead;
    while (zkit__dispatcher_next_dead(d, &dead)) {
        uint32_t n;
        memcpy(&n, dead.id + 12, 4);
        assert_true(n < R_IDS);
        r_item_t *it = &s_model->items[n];
        assert_true(it->live);
        assert_int_equal(*(uint32_t *) dead.payload, it->serial);
        assert_int_equal(dead.attempts, it->attempts);
        if (dead.reason == ZKIT__DISPATCHER_EXPIRED)
            assert_true(it->expires_at <= s_model->now);
        else
            assert_int_equal(dead.attempts, R_MAX_ATTEMPTS);
        it->live = false;
        s_model->dead++;
        r_release(it->serial);
        free(dead.payload);
    }
}

static void r_check(zkit__dispatcher_t *d)
{
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    uint64_t queued = 0, in_flight = 0;
    uint32_t per_peer[R_PEERS] = {0};
    for (uint32_t n = 0; n < R_IDS; n++) {
        uint8_t id[16];
        r_id(id, n);
        zkit__dispatcher_item_info_t info;
        int rc = zkit__dispatcher_find(d, id, &info);
        r_item_t *it = &s_model->items[n];
        /* Exactly one of: queued, in flight, or gone (acked or dead).       */
        assert_int_equal(rc == 0, it->live);
        if (rc)
            continue;
        assert_int_equal(info.attempts, it->attempts);
        assert_true(it->attempts <= R_MAX_ATTEMPTS);
        if (info.state == ZKIT__DISPATCHER_QUEUED) {
            queued++;
            assert_null(info.peer);
        }
        else {
            assert_int_equal(info.state, ZKIT__DISPATCHER_IN_FLIGHT);
            in_flight++;
            uint32_t p = (uint32_t) (info.peer[5] - '0');
            assert_true(p < R_PEERS && s_model->peers[p].registered);
            per_peer[p]++;
        }
    }
    assert_int_equal(c->queued, queued);
    assert_int_equal(c->in_flight, in_flight);
    uint64_t peers = 0;
    for (uint32_t p = 0; p < R_PEERS; p++) {
        char rid[16];
        r_rid(rid, p);
        zkit__dispatcher_peer_info_t info;
        int rc = zkit__dispatcher_peer_info(d, rid, strlen(rid), &info);
        assert_int_equal(rc == 0, s_model->peers[p].registered);
        if (rc) {
            assert_int_equal(per_peer[p], 0);
            continue;
        }
        peers++;
        assert_int_equal(info.window, s_model->peers[p].window);
        assert_int_equal(info.in_flight, per_peer[p]);
        assert_true(info.in_flight <= info.window);
        assert_int_equal(info.last_seen_ms, s_model->peers[p].last_seen);
    }
    assert_int_equal(c->peers, peers);
    assert_int_equal(c->submitted, s_model->submitted);
    assert_int_equal(c->dispatched, s_model->dispatched);
    assert_int_equal(c->acked, s_model->acked);
    assert_int_equal(c->dead_lettered, s_model->dead);
    assert_int_equal(c->duplicate_acks, s_model->unknown_acks);
    assert_int_equal(c->dead_pending, 0);
    assert_int_equal(c->expired_pending, s_model->nexpired);
    assert_int_equal(c->expired_dropped, 0);
    assert_int_equal(c->peers_expired, s_model->expired_drained + s_model->nexpired);
    s_check_identities(d);
    /* Payloads released so far: exactly one per retired submission.         */
    assert_int_equal(s_model->acked + s_model->dead,
                     s_model->serials - (uint64_t) (queued + in_flight));
    assert_int_equal(s_model->released_total, s_model->acked + s_model->dead);
}

/* Picks an id dispatched lately (so most acks and nacks hit something in
   flight), or any id at all (unknown, queued, or never sent).              */
static uint32_t r_pick(zkit__dispatcher_t *d, zkit__dispatcher_item_info_t *info, int *rc)
{
    uint32_t n = s_rand(5) ? s_model->recent[s_rand(32)] : s_rand(R_IDS);
    uint8_t id[16];
    r_id(id, n);
    *rc = zkit__dispatcher_find(d, id, info);
    return n;
}

static void r_step(zkit__dispatcher_t *d)
{
    uint8_t id[16];
    char rid[16];
    uint32_t op = s_rand(100);
    if (s_rand(4) == 0)
        s_model->now += s_rand(10);

    if (op < 25) { /* submit */
        uint32_t n = s_rand(R_IDS);
        r_id(id, n);
        r_item_t *it = &s_model->items[n];
        uint32_t *payload = malloc(sizeof *payload);
        assert_non_null(payload);
        *payload = s_model->serials;
        uint32_t kind = s_rand(50);
        int64_t expires = kind == 0   ? s_model->now
                          : kind < 10 ? s_model->now + 1 + s_rand(2000)
                                      : NEVER;
        int rc = zkit__dispatcher_submit(d, id, payload, expires, s_model->now);
        if (it->live) {
            assert_int_equal(rc, -1);
            assert_int_equal(errno, EEXIST);
            free(payload);
            return;
        }
        assert_int_equal(rc, 0);
        *it = (r_item_t){.live = true, .serial = s_model->serials++, .expires_at = expires};
        s_model->submitted++;
    }
    else if (op < 35) { /* peer_ready: a new incarnation picks a window */
        uint32_t p = s_rand(R_PEERS);
        r_rid(rid, p);
        r_peer_t *peer = &s_model->peers[p];
        uint32_t window = peer->registered ? peer->window : 1 + s_rand(3);
        assert_int_equal(zkit__dispatcher_peer_ready(d, rid, strlen(rid), window, s_model->now), 0);
        *peer = (r_peer_t){.registered = true, .window = window, .last_seen = s_model->now};
    }
    else if (op < 50) { /* heartbeat */
        uint32_t p = s_rand(R_PEERS);
        r_rid(rid, p);
        int rc = zkit__dispatcher_peer_seen(d, rid, strlen(rid), s_model->now);
        assert_int_equal(rc == 0, s_model->peers[p].registered);
        r_touch(p);
    }
    else if (op < 52) { /* disconnect */
        uint32_t p = s_rand(R_PEERS);
        r_rid(rid, p);
        int rc = zkit__dispatcher_peer_gone(d, rid, strlen(rid), s_model->now);
        assert_int_equal(rc == 0, s_model->peers[p].registered);
        s_model->peers[p].registered = false;
    }
    else if (op < 70) { /* dispatch a few */
        uint32_t rounds = 1 + s_rand(5);
        r_expire_peers();
        zkit__dispatcher_job_t job;
        for (uint32_t i = 0; i < rounds && zkit__dispatcher_next(d, s_model->now, &job); i++) {
            uint32_t n;
            memcpy(&n, job.id + 12, 4);
            r_item_t *it = &s_model->items[n];
            assert_true(it->live);
            assert_int_equal(*(uint32_t *) job.payload, it->serial);
            assert_int_equal(job.attempts, it->attempts + 1);
            it->attempts = job.attempts;
            s_model->recent[s_model->recent_next++ % 32] = n;
            uint32_t p = (uint32_t) (job.peer[5] - '0');
            assert_true(s_model->peers[p].registered);
            s_model->dispatched++;
        }
    }
    else if (op < 85) { /* ack: from the holder, another peer, or nobody */
        zkit__dispatcher_item_info_t info;
        int found;
        uint32_t n = r_pick(d, &info, &found);
        r_id(id, n);
        uint32_t p = found == 0 && info.peer && s_rand(4) ? (uint32_t) (info.peer[5] - '0')
                                                          : s_rand(R_PEERS);
        r_rid(rid, p);
        bool anonymous = s_rand(10) == 0;
        void *back = NULL;
        bool hand_back = s_rand(2);
        int rc = zkit__dispatcher_ack(d, anonymous ? NULL : rid, strlen(rid), id, s_model->now,
                                      hand_back ? &back : NULL);
        if (!anonymous)
            r_touch(p);
        if (found != 0) {
            assert_int_equal(rc, -1);
            assert_int_equal(errno, ENOENT);
            s_model->unknown_acks++;
        }
        else if (info.attempts == 0) {
            assert_int_equal(rc, -1);
            assert_int_equal(errno, EPROTO);
        }
        else {
            assert_int_equal(rc, 0);
            s_model->items[n].live = false;
            s_model->acked++;
            if (hand_back) {
                assert_non_null(back);
                r_release(*(uint32_t *) back);
                free(back);
            }
        }
    }
    else if (op < 92) { /* nack */
        zkit__dispatcher_item_info_t info;
        int found;
        uint32_t n = r_pick(d, &info, &found);
        r_id(id, n);
        uint32_t p = found == 0 && info.peer && s_rand(4) ? (uint32_t) (info.peer[5] - '0')
                                                          : s_rand(R_PEERS);
        r_rid(rid, p);
        int rc = zkit__dispatcher_nack(d, rid, strlen(rid), id, s_model->now);
        r_touch(p);
        bool holder =
            found == 0 && info.state == ZKIT__DISPATCHER_IN_FLIGHT && info.peer[5] - '0' == (int) p;
        assert_int_equal(rc == 0, holder);
    }
    else { /* time passes */
        s_model->now += s_rand(100);
        r_expire_peers();
        int64_t due = zkit__dispatcher_tick(d, s_model->now);
        assert_true(due > s_model->now);
    }
    r_drain_dead(d);
    /* Expiry records wait a few steps, so peers come back before the drain. */
    if (++s_model->step % 4 == 0)
        r_drain_expired(d);
}

/*  100,000 random operations over 5 peers and 1000 ids, with peers that
    come and go, windows 1 to 3, deadlines, expiries, stale and misdirected
    acks and nacks. After every step the dispatcher agrees with the model.  */
static void test_randomized_invariants(void **state)
{
    (void) state;
    s_model = calloc(1, sizeof *s_model);
    assert_non_null(s_model);
    s_model->released = calloc(R_STEPS + 1, 1);
    assert_non_null(s_model->released);
    s_model->now = T0;
    /* A fixed seed keeps the run reproducible; ZKIT_TEST_SEED explores more. */
    const char *seed = getenv("ZKIT_TEST_SEED");
    s_rng = seed ? strtoull(seed, NULL, 0) | 1 : 0x5eed2024ULL;

    zkit__dispatcher_opts_t opts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    opts.max_attempts = R_MAX_ATTEMPTS;
    opts.heartbeat_ms = 100;
    opts.liveness = 3;
    opts.attempt_timeout_ms = 700;
    opts.payload_free = r_free;
    opts.hash_seed = 12345;
    zkit__dispatcher_t *d = zkit__dispatcher_new(&opts);
    assert_non_null(d);

    for (int step = 0; step < R_STEPS; step++) {
        r_step(d);
        r_check(d);
    }
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(d);
    /* The run exercised what it claims to: every path was taken.           */
    assert_true(c->acked > 1000 && c->late_acks > 0 && c->nacked > 100);
    for (int r = 0; r < ZKIT__DISPATCHER_REASONS_; r++)
        assert_true(c->dead_lettered_by[r] > 0);
    assert_true(c->requeued_by[ZKIT__DISPATCHER_TIMED_OUT] > 0);
    assert_true(c->peers_expired > 0 && c->peers_gone > 0);
    assert_true(s_model->expired_drained > 0 && s_model->expired_came_back > 0);

    zkit__dispatcher_destroy(&d);
    /* Every payload was released exactly once: acked, dead or destroyed.  */
    for (uint32_t s = 0; s < s_model->serials; s++)
        assert_int_equal(s_model->released[s], 1);
    free(s_model->released);
    free(s_model);
    s_model = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credit_window_is_respected),
        cmocka_unit_test(test_lru_fairness_across_three_peers),
        cmocka_unit_test(test_window_refresh),
        cmocka_unit_test(test_ack_hands_back_or_frees_payload),
        cmocka_unit_test(test_duplicate_submit_is_refused),
        cmocka_unit_test(test_unknown_ack_is_counted_and_harmless),
        cmocka_unit_test(test_late_ack_retires_requeued_item),
        cmocka_unit_test(test_liveness_expiry_boundary),
        cmocka_unit_test(test_peer_seen_postpones_expiry),
        cmocka_unit_test(test_attempt_deadline_requeues),
        cmocka_unit_test(test_requeued_items_go_first),
        cmocka_unit_test(test_nack_requeues_then_dead_letters),
        cmocka_unit_test(test_poison_item_is_dead_lettered),
        cmocka_unit_test(test_expired_item_is_dead_lettered),
        cmocka_unit_test(test_tick_returns_next_deadline),
        cmocka_unit_test(test_counters_agree_with_traffic),
        cmocka_unit_test(test_arguments_and_limits),
        cmocka_unit_test(test_randomized_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
