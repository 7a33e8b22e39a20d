/*  test_balancer_e2e: zkit_client and zkit_service_worker through a
    zkit_balancer, in one process over TCP on loopback.

    What is proven here: requests and replies match by correlation id, in
    synchronous and asynchronous use; a worker with credit N holds N requests
    at once and never more; late and duplicate replies never reach the
    caller (the balancer drops late worker replies, the client drops replies
    it has no request for); a handler failure is retried elsewhere and a
    request that always fails ends as an error and a dead letter; an expired
    request ends as an error; raw REQ clients and RFC 6 workers interoperate
    with zkit's own.

    Waits are bounded: each condition is polled against a deadline, and
    every socket receive has a timeout.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

/* First: it defines _GNU_SOURCE (nftw) for everything after it. */
#include "test_spool_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_wait_util.h"
#include "zkit.h"
#include "balancer/protocol.h"

#define HB       50 /* ms: heartbeats in these tests */
#define DEADLINE 10000

/* ---- a service ----------------------------------------------------------------- */

typedef struct {
    atomic_int calls;
    atomic_int running;
    atomic_int max_running;
    atomic_int release; /* block: handlers wait until it is set */
    bool block;
    int sleep_first_ms; /* the first call takes this long */
} s_svc_t;

/* Replies "re:" + body, copying a zkit-part-2 header; fails on "poison".   */
static int s_handler(const zkit_envelope_t *request, zkit_envelope_t *reply, void *arg)
{
    s_svc_t *svc = arg;
    int call = atomic_fetch_add(&svc->calls, 1);
    int running = atomic_fetch_add(&svc->running, 1) + 1;
    int max = atomic_load(&svc->max_running);
    while (running > max && !atomic_compare_exchange_weak(&svc->max_running, &max, running))
        ;
    int64_t end = zclock_mono() + DEADLINE;
    while (svc->block && !atomic_load(&svc->release) && zclock_mono() < end)
        zclock_sleep(1);
    if (call == 0 && svc->sleep_first_ms)
        zclock_sleep(svc->sleep_first_ms);
    size_t size;
    const char *body = zkit_envelope_body(request, &size);
    int rc = -1;
    if (!(size == 6 && memcmp(body, "poison", 6) == 0)) {
        char out[256];
        int n = snprintf(out, sizeof out, "re:%.*s", (int) (size < 200 ? size : 200), body);
        zkit_envelope_set_body(reply, out, (size_t) n);
        zkit_value_t part;
        if (zkit_envelope_header(request, "zkit-part-2", &part) == 0)
            zkit_envelope_set_header_bin(reply, "zkit-part-2", part.data, part.size);
        rc = 0;
    }
    atomic_fetch_sub(&svc->running, 1);
    return rc;
}

/* ---- fixtures -------------------------------------------------------------------- */

static zkit_balancer_t *s_balancer(uint32_t max_attempts, uint32_t attempt_timeout_ms,
                                   const char *dead_letter_dir)
{
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    opts.frontend = "tcp://127.0.0.1:*";
    opts.backend = "tcp://127.0.0.1:*";
    opts.heartbeat_ms = HB;
    opts.max_attempts = max_attempts;
    opts.attempt_timeout_ms = attempt_timeout_ms;
    opts.dead_letter_dir = dead_letter_dir;
    zkit_balancer_t *b = zkit_balancer_new(&opts);
    assert_non_null(b);
    return b;
}

static zkit_service_worker_t *s_worker(zkit_balancer_t *b, s_svc_t *svc, uint32_t credit,
                                       const char *name)
{
    zkit_service_worker_opts_t opts = ZKIT_SERVICE_WORKER_OPTS_DEFAULT;
    opts.connect = zkit_balancer_backend(b);
    opts.handler = s_handler;
    opts.handler_arg = svc;
    opts.credit = credit;
    opts.heartbeat_ms = HB;
    opts.reconnect_ms = 20;
    opts.name = name;
    zkit_service_worker_t *w = zkit_service_worker_new(&opts);
    assert_non_null(w);
    return w;
}

static zkit_client_t *s_client(const char *endpoint, uint32_t timeout_ms, uint32_t retries)
{
    zkit_client_opts_t opts = ZKIT_CLIENT_OPTS_DEFAULT;
    opts.connect = endpoint;
    opts.timeout_ms = timeout_ms;
    opts.retries = retries;
    opts.backoff_ms = 10;
    zkit_client_t *c = zkit_client_new(&opts);
    assert_non_null(c);
    return c;
}

static zkit_balancer_stats_t s_stats(zkit_balancer_t *b)
{
    zkit_balancer_stats_t st;
    assert_int_equal(zkit_balancer_stats(b, &st), 0);
    return st;
}

static uint64_t s_workers(zkit_balancer_t *b)
{
    return s_stats(b).workers;
}

static void s_assert_body(zkit_envelope_t *env, const char *expected)
{
    assert_non_null(env);
    size_t size;
    const char *body = zkit_envelope_body(env, &size);
    assert_int_equal(size, strlen(expected));
    assert_memory_equal(body, expected, size);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_synchronous_requests(void **state)
{
    (void) state;
    s_svc_t svc = {0};
    zkit_balancer_t *b = s_balancer(5, 0, NULL);
    zkit_service_worker_t *w1 = s_worker(b, &svc, 1, "w1");
    zkit_service_worker_t *w2 = s_worker(b, &svc, 1, "w2");
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 2000, 3);
    for (int i = 0; i < 50; i++) {
        char body[32], expected[40];
        snprintf(body, sizeof body, "hello %d", i);
        snprintf(expected, sizeof expected, "re:%s", body);
        zkit_envelope_t *reply = zkit_client_request(c, body, strlen(body));
        s_assert_body(reply, expected);
        assert_non_null(zkit_envelope_src(reply));
        zkit_envelope_destroy(&reply);
    }
    zkit_client_stats_t cs;
    zkit_client_stats(c, &cs);
    assert_int_equal(cs.replies, 50);
    assert_int_equal(cs.discarded, 0);
    zkit_balancer_stats_t st = s_stats(b);
    assert_int_equal(st.requests, 50);
    assert_int_equal(st.replies, 50);
    assert_int_equal(st.workers, 2);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w1);
    zkit_service_worker_destroy(&w2);
    zkit_balancer_destroy(&b);
    assert_null(b);
}

static void test_asynchronous_requests_match_by_id(void **state)
{
    (void) state;
    enum { COUNT = 300 };
    s_svc_t svc = {0};
    zkit_balancer_t *b = s_balancer(5, 0, NULL);
    zkit_service_worker_t *w1 = s_worker(b, &svc, 4, NULL);
    zkit_service_worker_t *w2 = s_worker(b, &svc, 2, NULL);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 2);
    static uint8_t ids[COUNT][ZKIT_ID_SIZE];
    static bool seen[COUNT];
    for (int i = 0; i < COUNT; i++) {
        zkit_envelope_t *env = zkit_envelope_new();
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        zkit_envelope_set_body(env, body, strlen(body));
        assert_int_equal(zkit_client_send(c, &env, ids[i]), 0);
        assert_null(env);
    }
    assert_int_equal(zkit_client_pending(c), COUNT);
    for (int got = 0; got < COUNT; got++) {
        zkit_client_result_t r;
        assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
        assert_int_equal(r.status, 0);
        int i = 0;
        while (i < COUNT && memcmp(ids[i], r.id, ZKIT_ID_SIZE) != 0)
            i++;
        assert_true(i < COUNT);
        assert_false(seen[i]);
        seen[i] = true;
        char expected[24];
        snprintf(expected, sizeof expected, "re:%d", i);
        s_assert_body(r.reply, expected);
        zkit_value_t corr;
        assert_int_equal(zkit_envelope_corr(r.reply, &corr), 0);
        assert_memory_equal(corr.data, r.id, ZKIT_ID_SIZE);
        zkit_envelope_destroy(&r.reply);
    }
    zkit_client_result_t r;
    assert_int_equal(zkit_client_recv(c, &r, 0), -1);
    assert_int_equal(errno, ENOENT);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w1);
    zkit_service_worker_destroy(&w2);
    zkit_balancer_destroy(&b);
}

/* Credit 3 with 3 handler threads: three requests run at once on the one
   worker, and the balancer holds the rest back.                             */
static void test_credit_allows_n_at_once(void **state)
{
    (void) state;
    s_svc_t svc = {.block = true};
    zkit_balancer_t *b = s_balancer(5, 0, NULL);
    zkit_service_worker_t *w = s_worker(b, &svc, 3, NULL);
    TEST_ASSERT_EVENTUALLY(s_workers(b) == 1, DEADLINE);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 10000, 0);
    for (int i = 0; i < 7; i++) {
        zkit_envelope_t *env = zkit_envelope_new();
        zkit_envelope_set_body(env, "x", 1);
        assert_int_equal(zkit_client_send(c, &env, NULL), 0);
    }
    zkit_client_result_t r;
    TEST_ASSERT_EVENTUALLY(atomic_load(&svc.running) == 3, DEADLINE);
    zkit_balancer_stats_t st;
    TEST_ASSERT_EVENTUALLY((st = s_stats(b)).queued == 4, DEADLINE);
    assert_int_equal(st.in_flight, 3);
    assert_int_equal(atomic_load(&svc.max_running), 3);
    atomic_store(&svc.release, 1);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
        assert_int_equal(r.status, 0);
        zkit_envelope_destroy(&r.reply);
    }
    assert_int_equal(atomic_load(&svc.max_running), 3);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w);
    zkit_balancer_destroy(&b);
}

/* A fake balancer answers the client's first request with a stranger's
   reply, garbage, and the right reply twice, then answers the second: the
   caller sees exactly the two right replies, and three were discarded.     */
static void test_client_discards_duplicates_by_correlation_id(void **state)
{
    (void) state;
    zsock_t *server = zsock_new(ZMQ_ROUTER);
    assert_non_null(server);
    assert_true(zsock_bind(server, "tcp://127.0.0.1:*") > 0);
    char *endpoint = zsock_last_endpoint(server);
    zkit_client_t *c = s_client(endpoint, 5000, 0);
    zstr_free(&endpoint);
    uint8_t id1[ZKIT_ID_SIZE], id2[ZKIT_ID_SIZE];
    for (int i = 0; i < 2; i++) {
        zkit_envelope_t *env = zkit_envelope_new();
        zkit_envelope_set_body(env, i ? "two" : "one", 3);
        assert_int_equal(zkit_client_send(c, &env, i ? id2 : id1), 0);
    }
    zsock_set_rcvtimeo(server, DEADLINE);
    zmsg_t *req[2];
    for (int i = 0; i < 2; i++) {
        req[i] = zmsg_recv(server);
        assert_non_null(req[i]);
        assert_int_equal(zmsg_size(req[i]), 3); /* [rid][empty][envelope] */
    }
    zframe_t *rid = zmsg_first(req[0]);
    /* Replies: [rid][empty][envelope with corr].                             */
    const uint8_t stranger[ZKIT_ID_SIZE] = {1, 2, 3};
    const uint8_t *corrs[] = {stranger, NULL, id1, id1, id2};
    for (size_t i = 0; i < 5; i++) {
        zmsg_t *out = zmsg_new();
        zmsg_addmem(out, zframe_data(rid), zframe_size(rid));
        zmsg_addmem(out, "", 0);
        if (!corrs[i])
            zmsg_addstr(out, "not an envelope");
        else {
            zkit_envelope_t *env = zkit_envelope_new();
            zkit_envelope_set_corr(env, corrs[i], ZKIT_ID_SIZE);
            zkit_envelope_set_body(env, "answer", 6);
            zmq_msg_t frame;
            assert_int_equal(zkit_envelope_encode(env, &frame), 0);
            zmsg_addmem(out, zmq_msg_data(&frame), zmq_msg_size(&frame));
            zmq_msg_close(&frame);
            zkit_envelope_destroy(&env);
        }
        assert_int_equal(zmsg_send(&out, server), 0);
    }
    zkit_client_result_t r[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(zkit_client_recv(c, &r[i], DEADLINE), 0);
        assert_int_equal(r[i].status, 0);
        assert_memory_equal(r[i].id, i ? id2 : id1, ZKIT_ID_SIZE);
        zkit_envelope_destroy(&r[i].reply);
    }
    zkit_client_stats_t cs;
    zkit_client_stats(c, &cs);
    assert_int_equal(cs.replies, 2);
    assert_int_equal(cs.discarded, 3);
    assert_int_equal(zkit_client_recv(c, &r[0], 0), -1);
    assert_int_equal(errno, ENOENT);
    zmsg_destroy(&req[0]);
    zmsg_destroy(&req[1]);
    zkit_client_destroy(&c);
    zsock_destroy(&server);
}

/* Worker A takes the request and is slow; the attempt times out and worker
   B answers. A's late reply is dropped by the balancer: one reply only.     */
static void test_late_worker_reply_is_dropped(void **state)
{
    (void) state;
    s_svc_t slow = {.sleep_first_ms = 400};
    s_svc_t fast = {0};
    zkit_balancer_t *b = s_balancer(5, 100, NULL);
    zkit_service_worker_t *wa = s_worker(b, &slow, 1, "slow");
    TEST_ASSERT_EVENTUALLY(s_workers(b) == 1, DEADLINE); /* A is first in line */
    zkit_service_worker_t *wb = s_worker(b, &fast, 1, "fast");
    TEST_ASSERT_EVENTUALLY(s_workers(b) == 2, DEADLINE);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 0);
    zkit_envelope_t *reply = zkit_client_request(c, "q", 1);
    s_assert_body(reply, "re:q");
    assert_string_equal(zkit_envelope_src(reply), "fast");
    zkit_envelope_destroy(&reply);
    TEST_ASSERT_EVENTUALLY(s_stats(b).late_replies == 1, DEADLINE);
    zkit_balancer_stats_t st = s_stats(b);
    assert_int_equal(st.replies, 1);
    assert_int_equal(st.requeued, 1);
    zkit_client_stats_t cs;
    zkit_client_stats(c, &cs);
    assert_int_equal(cs.discarded, 0);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&wa);
    zkit_service_worker_destroy(&wb);
    zkit_balancer_destroy(&b);
}

static void test_poison_request_ends_as_error_and_dead_letter(void **state)
{
    (void) state;
    char dir[] = "/tmp/zkit-e2e-XXXXXX";
    assert_non_null(mkdtemp(dir));
    s_svc_t svc = {0};
    zkit_balancer_t *b = s_balancer(3, 0, dir);
    zkit_service_worker_t *w1 = s_worker(b, &svc, 1, NULL);
    zkit_service_worker_t *w2 = s_worker(b, &svc, 1, NULL);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 0);
    errno = 0;
    assert_null(zkit_client_request(c, "poison", 6));
    assert_int_equal(errno, EREMOTEIO);
    assert_string_equal(zkit_client_error(c), "NACKED after 3 attempts");
    zkit_envelope_t *reply = zkit_client_request(c, "fine", 4);
    s_assert_body(reply, "re:fine");
    zkit_envelope_destroy(&reply);
    zkit_balancer_stats_t st = s_stats(b);
    assert_int_equal(st.dead_letters, 1);
    assert_int_equal(st.nacks, 3);

    /* The record is in the dead-letter spool before the client got its
       error (fsync always), so a read-only spool sees it now, as `zkit
       spool inspect` and `replay` would on the live directory.             */
    zkit_spool_opts_t sopts = ZKIT_SPOOL_OPTS_DEFAULT;
    sopts.read_only = true;
    zkit_spool_t *spool = zkit_spool_new(dir, &sopts);
    assert_non_null(spool);
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 1, 0);
    assert_non_null(reader);
    zkit_spool_record_t rec;
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
    assert_int_equal(rec.seq, 1);
    zkit_envelope_t *dead = zkit_envelope_new();
    assert_int_equal(zkit_envelope_decode_bytes(dead, rec.data, rec.size), 0);
    s_assert_body(dead, "poison");
    zkit_value_t v;
    assert_int_equal(zkit_envelope_header(dead, "zkit-error", &v), 0);
    assert_int_equal(v.size, 6);
    assert_memory_equal(v.data, "NACKED", 6);
    assert_int_equal(zkit_envelope_header(dead, "zkit-attempts", &v), 0);
    assert_int_equal(v.i, 3);
    zkit_envelope_destroy(&dead);
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 0); /* exactly one record */
    zkit_spool_reader_destroy(&reader);
    zkit_spool_destroy(&spool);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w1);
    zkit_service_worker_destroy(&w2);
    zkit_balancer_destroy(&b);
    tu_rmrf(dir); /* after the balancer closed its spool */
}

/* No worker: a request with a ttl expires in the queue and ends as an
   error, well before the client's own timeout.                              */
static void test_expired_request_ends_as_error(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer(5, 0, NULL);
    zkit_client_opts_t opts = ZKIT_CLIENT_OPTS_DEFAULT;
    opts.connect = zkit_balancer_frontend(b);
    opts.timeout_ms = 8000;
    opts.retries = 0;
    opts.ttl_ms = 100;
    zkit_client_t *c = zkit_client_new(&opts);
    assert_non_null(c);
    int64_t start = zclock_mono();
    assert_null(zkit_client_request(c, "late", 4));
    assert_int_equal(errno, EREMOTEIO);
    assert_string_equal(zkit_client_error(c), "EXPIRED after 0 attempts");
    assert_true(zclock_mono() - start < 4000);
    assert_int_equal(s_stats(b).dead_letters, 1);
    zkit_client_destroy(&c);
    zkit_balancer_destroy(&b);
}

/* A plain REQ client through the balancer to a zkit worker, with a
   two-part request: the reply comes back as two plain frames.               */
static void test_req_client_with_zkit_worker(void **state)
{
    (void) state;
    s_svc_t svc = {0};
    zkit_balancer_t *b = s_balancer(5, 0, NULL);
    zkit_service_worker_t *w = s_worker(b, &svc, 1, NULL);
    zsock_t *req = zsock_new_req(zkit_balancer_frontend(b));
    assert_non_null(req);
    zsock_set_rcvtimeo(req, DEADLINE);
    assert_int_equal(zstr_sendm(req, "body"), 0);
    assert_int_equal(zstr_send(req, "second"), 0);
    zmsg_t *reply = zmsg_recv(req);
    assert_non_null(reply);
    assert_int_equal(zmsg_size(reply), 2);
    char *first = zmsg_popstr(reply);
    char *second = zmsg_popstr(reply);
    assert_string_equal(first, "re:body");
    assert_string_equal(second, "second");
    zstr_free(&first);
    zstr_free(&second);
    zmsg_destroy(&reply);
    zsock_destroy(&req);
    zkit_service_worker_destroy(&w);
    zkit_balancer_destroy(&b);
}

/* An RFC 6 worker (a DEALER in this thread) and a zkit client: the worker
   sees exactly [handle][empty][body], the client an envelope reply.         */
static void test_rfc6_worker_with_zkit_client(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer(5, 0, NULL);
    zsock_t *worker = zsock_new_dealer(zkit_balancer_backend(b));
    assert_non_null(worker);
    zsock_set_rcvtimeo(worker, DEADLINE);
    assert_int_equal(zstr_send(worker, "\x01"), 0);
    TEST_ASSERT_EVENTUALLY(s_workers(b) == 1, DEADLINE);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 0);
    zkit_envelope_t *env = zkit_envelope_new();
    zkit_envelope_set_body(env, "ping", 4);
    uint8_t id[ZKIT_ID_SIZE];
    assert_int_equal(zkit_client_send(c, &env, id), 0);
    zmsg_t *request = NULL;
    zkit_client_result_t r;
    /* Heartbeats come too; skip them. The client is driven meanwhile.       */
    while (!request) {
        assert_int_equal(zkit_client_recv(c, &r, 0), -1);
        zmsg_t *msg = zmsg_recv(worker);
        assert_non_null(msg);
        if (zmsg_size(msg) == 1)
            zmsg_destroy(&msg);
        else
            request = msg;
    }
    assert_int_equal(zmsg_size(request), 3);
    zframe_t *handle = zmsg_first(request);
    assert_int_equal(zframe_size(handle), ZKIT_ID_SIZE);
    assert_memory_equal(zframe_data(handle), id, ZKIT_ID_SIZE);
    assert_int_equal(zframe_size(zmsg_next(request)), 0);
    assert_true(zframe_streq(zmsg_next(request), "ping"));
    zframe_t *body = zmsg_last(request);
    zframe_reset(body, "pong", 4);
    assert_int_equal(zmsg_send(&request, worker), 0);
    assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
    assert_int_equal(r.status, 0);
    s_assert_body(r.reply, "pong");
    zkit_value_t corr;
    assert_int_equal(zkit_envelope_corr(r.reply, &corr), 0);
    assert_memory_equal(corr.data, id, ZKIT_ID_SIZE);
    zkit_envelope_destroy(&r.reply);
    zkit_client_destroy(&c);
    zsock_destroy(&worker);
    zkit_balancer_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synchronous_requests),
        cmocka_unit_test(test_asynchronous_requests_match_by_id),
        cmocka_unit_test(test_credit_allows_n_at_once),
        cmocka_unit_test(test_client_discards_duplicates_by_correlation_id),
        cmocka_unit_test(test_late_worker_reply_is_dropped),
        cmocka_unit_test(test_poison_request_ends_as_error_and_dead_letter),
        cmocka_unit_test(test_expired_request_ends_as_error),
        cmocka_unit_test(test_req_client_with_zkit_worker),
        cmocka_unit_test(test_rfc6_worker_with_zkit_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
