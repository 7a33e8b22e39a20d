/*  test_balancer_faults: the balancer when peers fail or misbehave, in one
    process over TCP on loopback.

    Proven here: a worker that disconnects with a request is noticed and the
    request goes to another worker; a worker that goes silent is removed
    within heartbeat x liveness; a zkit worker that is stopped gives back
    what it had not started; a restarted balancer is found again by zkit
    clients and workers; garbage into either socket is counted per reason
    and dropped while valid traffic keeps flowing.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_wait_util.h"
#include "zkit.h"

#define HB       50 /* ms */
#define LIVENESS 3
#define DEADLINE 10000

typedef struct {
    atomic_int calls;
    atomic_int running;
    atomic_int release;
    bool block;
} s_svc_t;

static int s_handler(const zkit_envelope_t *request, zkit_envelope_t *reply, void *arg)
{
    s_svc_t *svc = arg;
    atomic_fetch_add(&svc->calls, 1);
    atomic_fetch_add(&svc->running, 1);
    int64_t end = zclock_mono() + DEADLINE;
    while (svc->block && !atomic_load(&svc->release) && zclock_mono() < end)
        zclock_sleep(1);
    size_t size;
    const void *body = zkit_envelope_body(request, &size);
    zkit_envelope_set_body(reply, body, size);
    atomic_fetch_sub(&svc->running, 1);
    return 0;
}

static zkit_balancer_t *s_balancer_at(const char *frontend, const char *backend)
{
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    opts.frontend = frontend;
    opts.backend = backend;
    opts.heartbeat_ms = HB;
    opts.liveness = LIVENESS;
    zkit_balancer_t *b = zkit_balancer_new(&opts);
    assert_non_null(b);
    return b;
}

static zkit_balancer_t *s_balancer(void)
{
    return s_balancer_at("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
}

static zkit_service_worker_t *s_worker(const char *endpoint, s_svc_t *svc, uint32_t credit,
                                       uint32_t threads)
{
    zkit_service_worker_opts_t opts = ZKIT_SERVICE_WORKER_OPTS_DEFAULT;
    opts.connect = endpoint;
    opts.handler = s_handler;
    opts.handler_arg = svc;
    opts.credit = credit;
    opts.threads = threads;
    opts.heartbeat_ms = HB;
    opts.liveness = LIVENESS;
    opts.reconnect_ms = 20;
    opts.reconnect_max_ms = 100;
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
    opts.backoff_max_ms = 50;
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

static int s_send_async(zkit_client_t *c, const char *body)
{
    zkit_envelope_t *env = zkit_envelope_new();
    zkit_envelope_set_body(env, body, strlen(body));
    return zkit_client_send(c, &env, NULL);
}

/* Receives the next request on an RFC 6 worker socket, skipping the
   balancer's heartbeats and sending its own every HB ms, driving the client
   meanwhile. Returns NULL at the deadline.                                  */
static zmsg_t *s_next_request(zsock_t *worker, zkit_client_t *c)
{
    int64_t end = zclock_mono() + DEADLINE;
    int64_t heartbeat = 0;
    zsock_set_rcvtimeo(worker, 10);
    while (zclock_mono() < end) {
        if (zclock_mono() >= heartbeat) {
            zstr_send(worker, "\x02");
            heartbeat = zclock_mono() + HB;
        }
        zkit_client_result_t r;
        if (c && zkit_client_recv(c, &r, 0) == 0)
            zkit_envelope_destroy(&r.reply);
        zmsg_t *msg = zmsg_recv(worker);
        if (msg && zmsg_size(msg) >= 3)
            return msg;
        zmsg_destroy(&msg);
    }
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

/* An RFC 6 worker takes a request and disconnects: the balancer notices at
   its next heartbeat (the peer is gone) and the zkit worker answers.       */
static void test_disconnected_worker_requests_go_elsewhere(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer();
    zsock_t *ppp = zsock_new_dealer(zkit_balancer_backend(b));
    zstr_send(ppp, "\x01");
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 1, DEADLINE);
    s_svc_t svc = {0};
    zkit_service_worker_t *w = s_worker(zkit_balancer_backend(b), &svc, 1, 0);
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 2, DEADLINE);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 0);
    assert_int_equal(s_send_async(c, "job"), 0);
    zmsg_t *request = s_next_request(ppp, c);
    assert_non_null(request);
    zmsg_destroy(&request);
    zsock_destroy(&ppp);
    zkit_client_result_t r;
    assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
    assert_int_equal(r.status, 0);
    zkit_envelope_destroy(&r.reply);
    assert_int_equal(atomic_load(&svc.calls), 1);
    zkit_balancer_stats_t st = s_stats(b);
    assert_int_equal(st.workers_gone, 1);
    assert_int_equal(st.requeued, 1);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w);
    zkit_balancer_destroy(&b);
}

/* An RFC 6 worker takes a request and goes silent but stays connected: it
   is presumed dead after heartbeat x liveness, not before, and the request
   goes to the zkit worker.                                                  */
static void test_silent_worker_is_removed_within_liveness(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer();
    zsock_t *ppp = zsock_new_dealer(zkit_balancer_backend(b));
    zstr_send(ppp, "\x01");
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 1, DEADLINE);
    s_svc_t svc = {0};
    zkit_service_worker_t *w = s_worker(zkit_balancer_backend(b), &svc, 1, 0);
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 2, DEADLINE);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 0);
    assert_int_equal(s_send_async(c, "job"), 0);
    /* The request arrives; from now on this worker says nothing. Its last
       word (READY) was at most this long ago.                               */
    zmsg_t *request = s_next_request(ppp, c);
    assert_non_null(request);
    int64_t silent_since = zclock_mono();
    zmsg_destroy(&request);
    zkit_client_result_t r;
    assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
    int64_t took = zclock_mono() - silent_since;
    assert_int_equal(r.status, 0);
    zkit_envelope_destroy(&r.reply);
    /* READY was the last sign of life; it came before the request. The
       upper bound leaves room for a heartbeat tick and a loaded machine
       (CI runs suites in parallel on two cores, under ASan too): it catches
       a worker never removed, while the lower bound is the exact promise.  */
    assert_true(took >= HB * (LIVENESS - 1) - 10);
    assert_true(took <= HB * LIVENESS + 4 * HB + 3000);
    zkit_balancer_stats_t st = s_stats(b);
    assert_int_equal(st.workers_expired, 1);
    assert_int_equal(st.requeued, 1);
    assert_int_equal(st.workers, 1);
    zsock_destroy(&ppp);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w);
    zkit_balancer_destroy(&b);
}

static atomic_int s_destroying;

static void *s_destroy_thread(void *arg)
{
    atomic_store(&s_destroying, 1);
    zkit_service_worker_destroy(arg);
    return NULL;
}

/* A zkit worker with credit 3 and one handler thread holds three requests,
   runs one. Stopping it finishes that one, gives the other two back and
   says DISCONNECT: another worker answers them without a timeout. (Should
   the handler be released before the worker saw the stop, it runs more of
   them itself; the counts below hold either way.)                          */
static void test_stopped_worker_gives_back_what_it_did_not_start(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer();
    s_svc_t held = {.block = true};
    zkit_service_worker_t *wa = s_worker(zkit_balancer_backend(b), &held, 3, 1);
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 1, DEADLINE);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 10000, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send_async(c, "job"), 0);
    TEST_ASSERT_EVENTUALLY(s_stats(b).in_flight == 3 && atomic_load(&held.running) == 1, DEADLINE);
    s_svc_t svc = {0};
    zkit_service_worker_t *wb = s_worker(zkit_balancer_backend(b), &svc, 1, 0);
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 2, DEADLINE);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_destroy_thread, &wa), 0);
    TEST_ASSERT_EVENTUALLY(atomic_load(&s_destroying), DEADLINE);
    atomic_store(&held.release, 1);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_null(wa);
    for (int i = 0; i < 3; i++) {
        zkit_client_result_t r;
        assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
        assert_int_equal(r.status, 0);
        zkit_envelope_destroy(&r.reply);
    }
    int ran_here = atomic_load(&held.calls);
    assert_true(ran_here >= 1);
    assert_int_equal(ran_here + atomic_load(&svc.calls), 3);
    zkit_balancer_stats_t st = s_stats(b);
    assert_int_equal(st.nacks, (uint64_t) (3 - ran_here));
    assert_int_equal(st.workers_gone, 1);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&wb);
    zkit_balancer_destroy(&b);
}

/* The balancer is destroyed and a new one binds the same endpoints: the
   worker notices the silence, reconnects and says READY; the client's
   retries reach the new balancer.                                           */
static void test_restarted_balancer_is_found_again(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer();
    char frontend[256], backend[256];
    snprintf(frontend, sizeof frontend, "%s", zkit_balancer_frontend(b));
    snprintf(backend, sizeof backend, "%s", zkit_balancer_backend(b));
    s_svc_t svc = {0};
    zkit_service_worker_t *w = s_worker(backend, &svc, 2, 0);
    zkit_client_t *c = s_client(frontend, 200, 100);
    zkit_envelope_t *reply = zkit_client_request(c, "before", 6);
    assert_non_null(reply);
    zkit_envelope_destroy(&reply);

    zkit_balancer_destroy(&b);
    /* libzmq closes listeners in its I/O thread, a moment after the socket
       is destroyed: bind again until the port is free.                      */
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    opts.frontend = frontend;
    opts.backend = backend;
    opts.heartbeat_ms = HB;
    opts.liveness = LIVENESS;
    int64_t end = zclock_mono() + DEADLINE;
    while (!(b = zkit_balancer_new(&opts)) && zclock_mono() < end)
        zclock_sleep(5);
    assert_non_null(b);
    reply = zkit_client_request(c, "after", 5);
    assert_non_null(reply);
    size_t size;
    const char *body = zkit_envelope_body(reply, &size);
    assert_int_equal(size, 5);
    assert_memory_equal(body, "after", 5);
    zkit_envelope_destroy(&reply);
    zkit_service_worker_stats_t ws;
    assert_int_equal(zkit_service_worker_stats(w, &ws), 0);
    assert_true(ws.reconnects >= 1);
    assert_int_equal(s_stats(b).workers, 1);
    zkit_client_destroy(&c);
    zkit_service_worker_destroy(&w);
    zkit_balancer_destroy(&b);
}

static void s_send_frames(zsock_t *sock, const char *const *frames, const size_t *sizes, size_t n)
{
    zmsg_t *msg = zmsg_new();
    for (size_t i = 0; i < n; i++)
        zmsg_addmem(msg, frames[i], sizes[i]);
    assert_int_equal(zmsg_send(&msg, sock), 0);
}

#define SEND(sock, ...)                                                                            \
    do {                                                                                           \
        const char *f_[] = {__VA_ARGS__};                                                          \
        size_t s_[sizeof f_ / sizeof f_[0]];                                                       \
        for (size_t i_ = 0; i_ < sizeof f_ / sizeof f_[0]; i_++)                                   \
            s_[i_] = strlen(f_[i_]);                                                               \
        s_send_frames(sock, f_, s_, sizeof f_ / sizeof f_[0]);                                     \
    } while (0)

/* Garbage into both sockets, each kind counted under its reason, while a
   zkit client and worker keep working.                                      */
static void test_garbage_is_counted_and_dropped(void **state)
{
    (void) state;
    zkit_balancer_t *b = s_balancer();
    s_svc_t svc = {0};
    zkit_service_worker_t *w = s_worker(zkit_balancer_backend(b), &svc, 1, 0);
    zkit_client_t *c = s_client(zkit_balancer_frontend(b), 5000, 0);
    zsock_t *bad_client = zsock_new_dealer(zkit_balancer_frontend(b));
    zsock_t *bad_worker = zsock_new_dealer(zkit_balancer_backend(b));

    SEND(bad_client, "no delimiter"); /* route */
    SEND(bad_client, "");             /* frames: no content */
    SEND(bad_client, "a", "b", "c");  /* route: no empty frame */
    zmsg_t *wide = zmsg_new();        /* frames: 40 frames */
    for (int i = 0; i < 40; i++)
        zmsg_addstr(wide, i == 0 ? "" : "x");
    zmsg_send(&wide, bad_client);

    SEND(bad_worker, "\x07");                                  /* command */
    SEND(bad_worker, "READY");                                 /* command */
    SEND(bad_worker, "\x01", "0");                             /* field: credit 0 */
    SEND(bad_worker, "\x01", "12345");                         /* field */
    SEND(bad_worker, "\x03", "short");                         /* field: handle */
    SEND(bad_worker, "\x02", "extra");                         /* frames */
    SEND(bad_worker, "short handle", "", "body");              /* field */
    SEND(bad_worker, "0123456789abcdef", "not empty", "body"); /* route */
    SEND(bad_worker, "\x02");                                  /* unknown worker heartbeat */

    zkit_balancer_stats_t st;
    TEST_ASSERT_EVENTUALLY((st = s_stats(b)).unknown_worker == 1, DEADLINE);
    assert_int_equal(st.bad_frontend[ZKIT_BALANCER_BAD_ROUTE], 2);
    assert_int_equal(st.bad_frontend[ZKIT_BALANCER_BAD_FRAMES], 2);
    assert_int_equal(st.bad_backend[ZKIT_BALANCER_BAD_COMMAND], 2);
    assert_int_equal(st.bad_backend[ZKIT_BALANCER_BAD_FIELD], 4);
    assert_int_equal(st.bad_backend[ZKIT_BALANCER_BAD_FRAMES], 1);
    assert_int_equal(st.bad_backend[ZKIT_BALANCER_BAD_ROUTE], 1);
    assert_int_equal(st.requests, 0);

    for (int i = 0; i < 10; i++) {
        zkit_envelope_t *reply = zkit_client_request(c, "still here", 10);
        assert_non_null(reply);
        zkit_envelope_destroy(&reply);
    }

    /* A worker that said READY with a credit speaks envelopes; a reply that
       is not one is dropped and fails the attempt, and the retry is served. */
    zkit_service_worker_destroy(&w);
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 0, DEADLINE);
    SEND(bad_worker, "\x01", "1");
    TEST_ASSERT_EVENTUALLY(s_stats(b).workers == 1, DEADLINE);
    assert_int_equal(s_send_async(c, "once more"), 0);
    zmsg_t *request = s_next_request(bad_worker, c);
    assert_non_null(request);
    zframe_t *content = zmsg_last(request);
    zmq_msg_t frame;
    zmq_msg_init_size(&frame, zframe_size(content));
    memcpy(zmq_msg_data(&frame), zframe_data(content), zframe_size(content));
    zkit_envelope_t *env = zkit_envelope_new();
    assert_int_equal(zkit_envelope_decode(env, &frame), 0);
    zmq_msg_close(&frame);
    zframe_reset(content, "not an envelope", 15);
    zmsg_t *good = zmsg_dup(request);
    assert_int_equal(zmsg_send(&request, bad_worker), 0);
    request = s_next_request(bad_worker, c);
    assert_non_null(request);
    zmsg_destroy(&request);
    zkit_envelope_t *answer = zkit_envelope_new();
    zkit_envelope_set_corr(answer, zkit_envelope_id(env), ZKIT_ID_SIZE);
    zkit_envelope_set_body(answer, "fine", 4);
    zmq_msg_init(&frame);
    assert_int_equal(zkit_envelope_encode(answer, &frame), 0);
    zframe_reset(zmsg_last(good), zmq_msg_data(&frame), zmq_msg_size(&frame));
    zmq_msg_close(&frame);
    assert_int_equal(zmsg_send(&good, bad_worker), 0);
    zkit_client_result_t r;
    assert_int_equal(zkit_client_recv(c, &r, DEADLINE), 0);
    assert_int_equal(r.status, 0);
    zkit_envelope_destroy(&r.reply);
    st = s_stats(b);
    assert_int_equal(st.bad_backend[ZKIT_BALANCER_BAD_ENVELOPE], 1);
    assert_int_equal(st.nacks, 1);
    assert_int_equal(st.replies, 11);

    zkit_envelope_destroy(&env);
    zkit_envelope_destroy(&answer);
    zsock_destroy(&bad_client);
    zsock_destroy(&bad_worker);
    zkit_client_destroy(&c);
    zkit_balancer_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disconnected_worker_requests_go_elsewhere),
        cmocka_unit_test(test_silent_worker_is_removed_within_liveness),
        cmocka_unit_test(test_stopped_worker_gives_back_what_it_did_not_start),
        cmocka_unit_test(test_restarted_balancer_is_found_again),
        cmocka_unit_test(test_garbage_is_counted_and_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
