/*  test_pipeline_ops.c: the pipeline components' operations options, in
    process: the control getters, PAUSE/RESUME (what the ventilator does
    while paused) and the security options each socket role needs.

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
#include <unistd.h>

#include "pipeline/pipeline.h"
#include "test_control_util.h"

#define S_ANY     "tcp://127.0.0.1:*"
#define S_WAIT_MS 20000

static int s_square(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                    size_t reason_size, void *arg)
{
    (void) reason;
    (void) reason_size;
    (void) arg;
    size_t size;
    const void *body = zkit_envelope_body(task, &size);
    return zkit_envelope_set_body(result, body, size);
}

static void s_assert_resolved(const char *endpoint)
{
    assert_non_null(endpoint);
    assert_int_equal(strncmp(endpoint, "tcp://127.0.0.1:", 16), 0);
    assert_null(strchr(endpoint, '*'));
}

static void test_control_getters(void **state)
{
    (void) state;
    zkit_sink_opts_t sopts = ZKIT_SINK_OPTS_DEFAULT;
    sopts.bind = S_ANY;
    zkit_sink_t *plain = zkit_sink_new(&sopts);
    assert_non_null(plain);
    assert_null(zkit_sink_control(plain));
    zkit_sink_destroy(&plain);
    assert_null(zkit_sink_control(NULL));
    assert_null(zkit_ventilator_control(NULL));
    assert_null(zkit_worker_control(NULL));
}

/* A paused ventilator takes tasks in and hands none out, while its worker
   keeps hearing heartbeats; RESUME lets the batch finish. The worker's and
   the sink's commands answer as documented.                                */
static void test_pause_resume(void **state)
{
    (void) state;
    zkit_sink_opts_t sopts = ZKIT_SINK_OPTS_DEFAULT;
    sopts.bind = S_ANY;
    sopts.ops.control = S_ANY;
    zkit_sink_t *sink = zkit_sink_new(&sopts);
    assert_non_null(sink);
    s_assert_resolved(zkit_sink_control(sink));

    zkit_ventilator_opts_t vopts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    vopts.bind = S_ANY;
    vopts.sink = zkit_sink_endpoint(sink);
    vopts.heartbeat_ms = 50;
    vopts.liveness = 40;
    vopts.ops.control = S_ANY;
    zkit_ventilator_t *vent = zkit_ventilator_new(&vopts);
    assert_non_null(vent);
    const char *vctl = zkit_ventilator_control(vent);
    s_assert_resolved(vctl);

    zkit_worker_opts_t wopts = ZKIT_WORKER_OPTS_DEFAULT;
    wopts.connect = zkit_ventilator_endpoint(vent);
    wopts.sink = zkit_sink_endpoint(sink);
    wopts.heartbeat_ms = 50;
    wopts.liveness = 40;
    wopts.handler = s_square;
    wopts.ops.control = S_ANY;
    zkit_worker_t *worker = zkit_worker_new(&wopts);
    assert_non_null(worker);
    s_assert_resolved(zkit_worker_control(worker));

    test_control_expect(zkit_sink_control(sink), "PAUSE", "ERROR not supported");
    test_control_expect(zkit_sink_control(sink), "PING", "PONG");
    test_control_expect(vctl, "PAUSE", "OK paused");
    test_control_expect(vctl, "PAUSE", "OK paused"); /* idempotent */
    test_control_expect(vctl, "PAUSE now", "ERROR PAUSE takes no argument");

    assert_int_equal(zkit_ventilator_open(vent, "paused"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(zkit_ventilator_submit(vent, "x", 1), 0);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    /* The worker registered and then heard heartbeats: the actor ran many
       loop turns with the tasks queued.                                   */
    zkit__worker_stats_t ws;
    zkit__ventilator_stats_t vs;
    int64_t end = zclock_mono() + S_WAIT_MS;
    do {
        zclock_sleep(10);
        assert_int_equal(zkit__worker_stats(worker, &ws), 0);
        assert_int_equal(zkit__ventilator_stats(vent, &vs), 0);
    } while ((ws.heartbeats_in < 5 || vs.dispatcher.queued < 3) && zclock_mono() < end);
    assert_true(ws.heartbeats_in >= 5);
    assert_int_equal(vs.readies, 1);
    assert_int_equal(vs.dispatcher.queued, 3);
    assert_int_equal(vs.dispatcher.dispatched, 0);

    test_control_expect(vctl, "RESUME", "OK resumed");
    zkit_batch_report_t report;
    assert_int_equal(zkit_ventilator_wait(vent, S_WAIT_MS, &report), 0);
    assert_int_equal(report.done, 3);
    assert_int_equal(zkit_sink_wait(sink, S_WAIT_MS, &report), 0);
    assert_int_equal(report.done, 3);

    test_control_expect(zkit_worker_control(worker), "PAUSE", "OK paused");
    test_control_expect(zkit_worker_control(worker), "RESUME", "OK resumed");
    test_control_expect(zkit_worker_control(worker), "FROB", "ERROR unknown command");

    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/* A certificate pair in a temporary directory: dir/name and dir/name_secret. */
static void s_cert(char *dir, size_t size, char *secret, size_t secret_size)
{
    snprintf(dir, size, "/tmp/zkit-pipeops-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/server", dir);
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    assert_int_equal(zcert_save(cert, path), 0);
    zcert_destroy(&cert);
    snprintf(secret, secret_size, "%s_secret", path);
}

static void s_cert_remove(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/server", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/server_secret", dir);
    unlink(path);
    rmdir(dir);
}

/* With a secret, a bound socket needs an allow list and a connecting one a
   server key: each component refuses to start without what its sockets
   need, with EINVAL.                                                      */
static void test_security_roles(void **state)
{
    (void) state;
    char dir[64], secret[256], public_key[256];
    s_cert(dir, sizeof dir, secret, sizeof secret);
    snprintf(public_key, sizeof public_key, "%s/server", dir);

    zkit_sink_opts_t sopts = ZKIT_SINK_OPTS_DEFAULT;
    sopts.bind = S_ANY;
    sopts.ops.curve_secret = secret;
    errno = 0;
    assert_null(zkit_sink_new(&sopts));
    assert_int_equal(errno, EINVAL);

    zkit_ventilator_opts_t vopts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    vopts.bind = S_ANY;
    vopts.sink = "tcp://127.0.0.1:9";
    vopts.ops.curve_secret = secret;
    vopts.ops.curve_server = public_key; /* the sink link, but no allow list */
    errno = 0;
    assert_null(zkit_ventilator_new(&vopts));
    assert_int_equal(errno, EINVAL);
    vopts.ops.curve_server = NULL;
    vopts.ops.curve_allow = "*"; /* the worker socket, but no server key */
    errno = 0;
    assert_null(zkit_ventilator_new(&vopts));
    assert_int_equal(errno, EINVAL);

    zkit_worker_opts_t wopts = ZKIT_WORKER_OPTS_DEFAULT;
    wopts.connect = "tcp://127.0.0.1:9";
    wopts.sink = "tcp://127.0.0.1:9";
    wopts.handler = s_square;
    wopts.ops.curve_secret = secret;
    errno = 0;
    assert_null(zkit_worker_new(&wopts));
    assert_int_equal(errno, EINVAL);
    /* With the server key it starts (connects succeed before the peer). */
    wopts.ops.curve_server = public_key;
    zkit_worker_t *worker = zkit_worker_new(&wopts);
    assert_non_null(worker);
    zkit_worker_destroy(&worker);
    s_cert_remove(dir);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_getters),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_security_roles),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zsys_shutdown();
    return rc;
}
