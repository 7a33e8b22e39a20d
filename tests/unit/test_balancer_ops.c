/*  test_balancer_ops: the operations options of zkit_balancer,
    zkit_service_worker and zkit_client, in one process.

    What is proven here: the control getters return NULL without a control
    endpoint and the resolved endpoint with one; the balancer's control
    endpoint answers STATS with a MessagePack map and PAUSE/RESUME with OK,
    and while paused a request from a zkit_client waits in the queue and is
    answered after RESUME; a service worker answers STATS and refuses PAUSE;
    a client refuses ops.control (EINVAL); a security option error reaches
    the caller of the constructor (EINVAL), with nothing left running.

    Waits are bounded: every receive has a timeout.

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
#include <stdlib.h>
#include <string.h>

#include "zkit.h"

#include "test_control_util.h"
#include "test_wait_util.h"

#define S_TIMEOUT_MS 10000

static int s_echo(const zkit_envelope_t *request, zkit_envelope_t *reply, void *arg)
{
    (void) arg;
    size_t size;
    const void *body = zkit_envelope_body(request, &size);
    return zkit_envelope_set_body(reply, body, size);
}

static zkit_balancer_t *s_balancer(const char *control)
{
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    opts.frontend = "tcp://127.0.0.1:*";
    opts.backend = "tcp://127.0.0.1:*";
    opts.heartbeat_ms = 100;
    opts.ops.control = control;
    zkit_balancer_t *lb = zkit_balancer_new(&opts);
    assert_non_null(lb);
    return lb;
}

static void test_control_getters(void **state)
{
    (void) state;
    zkit_balancer_t *lb = s_balancer(NULL);
    assert_null(zkit_balancer_control(lb));
    zkit_balancer_destroy(&lb);
    assert_null(zkit_balancer_control(NULL));
    lb = s_balancer("tcp://127.0.0.1:*");
    const char *ep = zkit_balancer_control(lb);
    assert_non_null(ep);
    assert_true(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && strcmp(ep, "tcp://127.0.0.1:*") != 0);
    /* A MessagePack map: its first byte is never 0, so the text reply
       holds at least that byte.                                             */
    char *stats = test_control_request(ep, "STATS");
    uint8_t first = (uint8_t) stats[0];
    assert_true((first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf);
    free(stats);
    zkit_balancer_destroy(&lb);
}

static void test_pause_holds_a_request_until_resume(void **state)
{
    (void) state;
    zkit_balancer_t *lb = s_balancer("tcp://127.0.0.1:*");
    const char *ep = zkit_balancer_control(lb);
    zkit_service_worker_opts_t wopts = ZKIT_SERVICE_WORKER_OPTS_DEFAULT;
    wopts.connect = zkit_balancer_backend(lb);
    wopts.handler = s_echo;
    wopts.heartbeat_ms = 100;
    wopts.ops.control = "tcp://127.0.0.1:*";
    zkit_service_worker_t *worker = zkit_service_worker_new(&wopts);
    assert_non_null(worker);
    assert_non_null(zkit_service_worker_control(worker));
    test_control_expect(zkit_service_worker_control(worker), "PAUSE", "ERROR not supported");
    test_control_expect(zkit_service_worker_control(worker), "PING", "PONG");

    test_control_expect(ep, "PAUSE", "OK paused");
    zkit_client_opts_t copts = ZKIT_CLIENT_OPTS_DEFAULT;
    copts.connect = zkit_balancer_frontend(lb);
    copts.timeout_ms = 60000;
    zkit_client_t *client = zkit_client_new(&copts);
    assert_non_null(client);
    zkit_envelope_t *req = zkit_envelope_new();
    assert_int_equal(zkit_envelope_set_body(req, "held", 4), 0);
    assert_int_equal(zkit_client_send(client, &req, NULL), 0);
    /* Wait until the balancer holds it queued: nothing is dispatched.       */
    zkit_balancer_stats_t st = {0};
    TEST_WAIT_UNTIL(assert_int_equal(zkit_balancer_stats(lb, &st), 0), st.queued == 1,
                    S_TIMEOUT_MS);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.dispatched, 0);
    zkit_client_result_t result;
    assert_int_equal(zkit_client_recv(client, &result, 300), -1);
    assert_int_equal(errno, EAGAIN);

    test_control_expect(ep, "RESUME", "OK resumed");
    assert_int_equal(zkit_client_recv(client, &result, S_TIMEOUT_MS), 0);
    assert_int_equal(result.status, 0);
    size_t size;
    const void *body = zkit_envelope_body(result.reply, &size);
    assert_int_equal(size, 4);
    assert_memory_equal(body, "held", 4);
    zkit_envelope_destroy(&result.reply);
    assert_int_equal(zkit_balancer_stats(lb, &st), 0);
    assert_int_equal(st.dispatched, 1);
    assert_int_equal(st.replies, 1);

    zkit_client_destroy(&client);
    zkit_service_worker_destroy(&worker);
    zkit_balancer_destroy(&lb);
}

static void test_option_errors_reach_the_caller(void **state)
{
    (void) state;
    zkit_client_opts_t copts = ZKIT_CLIENT_OPTS_DEFAULT;
    copts.connect = "tcp://127.0.0.1:1";
    copts.ops.control = "tcp://127.0.0.1:*";
    errno = 0;
    assert_null(zkit_client_new(&copts));
    assert_int_equal(errno, EINVAL);

    /* CURVE server keys without an allow list: a bound socket has no
       configuration for its role.                                           */
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    opts.frontend = "tcp://127.0.0.1:*";
    opts.backend = "tcp://127.0.0.1:*";
    opts.ops.curve_server = "/nonexistent/balancer.pub";
    errno = 0;
    assert_null(zkit_balancer_new(&opts));
    assert_true(errno == EINVAL || errno == ENOENT);

    zkit_service_worker_opts_t wopts = ZKIT_SERVICE_WORKER_OPTS_DEFAULT;
    wopts.connect = "tcp://127.0.0.1:1";
    wopts.handler = s_echo;
    wopts.ops.control = "bogus://nowhere";
    errno = 0;
    assert_null(zkit_service_worker_new(&wopts));
    assert_int_not_equal(errno, 0);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(stderr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_getters),
        cmocka_unit_test(test_pause_holds_a_request_until_resume),
        cmocka_unit_test(test_option_errors_reach_the_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
