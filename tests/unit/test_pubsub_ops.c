/*  test_pubsub_ops: what the pub/sub components do with their operations
    options and with hostile peers, pinned in C: the control endpoint's
    getter and PAUSE/RESUME, a publisher that keeps at most
    ZKIT_PUBLISHER_PREFIXES_MAX prefixes however many a peer subscribes to,
    a forwarder that forwards only [topic][envelope] and passes only
    subscriptions upstream, and constructors refusing bad security options.

    Waits poll the components' counters with a deadline.

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
#include <string.h>

#include "zkit.h"

#include "test_control_util.h"
#include "test_wait_util.h"

#define ANY    "tcp://127.0.0.1:*"
#define S_WAIT 10000 /* ms any single wait may take */

static void test_publisher_prefix_cap_and_pause(void **state)
{
    (void) state;
    zkit_publisher_opts_t po = ZKIT_PUBLISHER_OPTS_DEFAULT;
    po.name = "capped";
    po.bind = ANY;
    po.ops.control = ANY;
    zkit_publisher_t *pub = zkit_publisher_new(&po);
    assert_non_null(pub);
    const char *control = zkit_publisher_control(pub);
    assert_non_null(control);
    assert_non_null(strstr(control, "tcp://127.0.0.1:"));

    /* A peer subscribing to more prefixes than are remembered, some too
       long to match any topic. */
    zsock_t *xsub = zsock_new(ZMQ_XSUB);
    assert_non_null(xsub);
    zsock_set_sndhwm(xsub, 0);
    assert_int_equal(zsock_connect(xsub, "%s", zkit_publisher_endpoint(pub)), 0);
    uint8_t frame[400];
    frame[0] = 1;
    const int total = ZKIT_PUBLISHER_PREFIXES_MAX + 500;
    for (int i = 0; i < total; i++) {
        int n = snprintf((char *) frame + 1, sizeof frame - 1, "p%d", i);
        zmq_send(zsock_resolve(xsub), frame, (size_t) n + 1, 0);
    }
    memset(frame + 1, 'L', 300); /* longer than ZKIT_TOPIC_MAX */
    zmq_send(zsock_resolve(xsub), frame, 301, 0);
    zkit_publisher_stats_t st;
    TEST_WAIT_UNTIL(assert_int_equal(zkit_publisher_stats(pub, &st), 0),
                    st.subscribe >= (uint64_t) total + 1, S_WAIT);
    assert_int_equal(st.subscribe, total + 1);
    assert_int_equal(st.prefixes, ZKIT_PUBLISHER_PREFIXES_MAX);
    assert_int_equal(st.bad_subscriptions, 0);

    /* Paused: sends are taken but not published until RESUME. */
    test_control_expect(control, "PAUSE", "OK paused");
    assert_int_equal(zkit_publisher_publish(pub, "p1", "x", 1, 0), 0);
    assert_int_equal(zkit_publisher_stats(pub, &st), 0);
    assert_int_equal(st.paused, 1);
    assert_int_equal(st.published, 0);
    test_control_expect(control, "RESUME", "OK resumed");
    test_control_expect(control, "RESUME", "OK resumed"); /* a repeat: no change */
    TEST_WAIT_UNTIL(assert_int_equal(zkit_publisher_stats(pub, &st), 0), st.published >= 1, S_WAIT);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.paused, 0);
    zsock_destroy(&xsub);
    zkit_publisher_destroy(&pub);
}

static void test_forwarder_filters_frames(void **state)
{
    (void) state;
    zkit_forwarder_opts_t fo = ZKIT_FORWARDER_OPTS_DEFAULT;
    fo.frontend = ANY;
    fo.backend = ANY;
    zkit_forwarder_t *fwd = zkit_forwarder_new(&fo);
    assert_non_null(fwd);
    assert_null(zkit_forwarder_control(fwd));

    zsock_t *pub = zsock_new(ZMQ_XPUB);
    zsock_t *sub = zsock_new(ZMQ_XSUB);
    assert_non_null(pub);
    assert_non_null(sub);
    zsock_set_sndhwm(pub, 0);
    zsock_set_rcvtimeo(sub, S_WAIT);
    zsock_set_rcvtimeo(pub, S_WAIT);
    assert_int_equal(zsock_connect(pub, "%s", zkit_forwarder_frontend(fwd)), 0);
    assert_int_equal(zsock_connect(sub, "%s", zkit_forwarder_backend(fwd)), 0);
    zsock_send(sub, "b", (byte *) "\x01", (size_t) 1);
    char *subscription = zstr_recv(pub); /* "\x01": the subscription arrived */
    assert_non_null(subscription);
    free(subscription);

    /* Not subscriptions, from the backend side: never passed upstream. (libzmq's
       XPUB reports the first frame of "\x01multi" "part" as a subscription on
       its own, then hands "part" up as a message of its own.) */
    zstr_send(sub, "hello");
    zstr_sendx(sub, "\x01multi", "part", NULL);
    /* The feed: one, two and three frames; only the two-frame one passes. */
    zstr_send(pub, "one");
    zstr_sendx(pub, "a", "b", "c", NULL);
    zstr_sendx(pub, "topic", "envelope", NULL);
    zmsg_t *msg = zmsg_recv(sub);
    assert_non_null(msg);
    assert_int_equal(zmsg_size(msg), 2);
    char *topic = zmsg_popstr(msg);
    assert_string_equal(topic, "topic");
    free(topic);
    zmsg_destroy(&msg);

    zkit_forwarder_stats_t st;
    TEST_WAIT_UNTIL(assert_int_equal(zkit_forwarder_stats(fwd, &st), 0), st.bad_upstream >= 2,
                    S_WAIT);
    assert_int_equal(st.bad_frames, 2);
    assert_int_equal(st.bad_upstream, 2);
    /* What the wire carried: the malformed messages too, every frame. */
    assert_int_equal(st.msgs_in, 3);
    assert_int_equal(st.bytes_in, strlen("one") + 3 + strlen("topic") + strlen("envelope"));
    assert_int_equal(st.msgs_out, 1);
    assert_int_equal(st.bytes_out, strlen("topic") + strlen("envelope"));
    assert_int_equal(st.upstream, 2);
    assert_int_equal(st.subscribe, 2);
    /* Nothing but the subscriptions reached the publisher side. */
    char *second = zstr_recv(pub);
    assert_non_null(second);
    assert_string_equal(second, "\x01multi");
    free(second);
    zsock_set_rcvtimeo(pub, 200);
    char *extra = zstr_recv(pub);
    assert_null(extra);
    zsock_destroy(&pub);
    zsock_destroy(&sub);
    zkit_forwarder_destroy(&fwd);
}

static void test_bad_ops_options(void **state)
{
    (void) state;
    /* --curve-allow without --curve-secret, and a missing certificate. */
    zkit_forwarder_opts_t fo = ZKIT_FORWARDER_OPTS_DEFAULT;
    fo.frontend = ANY;
    fo.backend = ANY;
    fo.ops.curve_allow = "*";
    errno = 0;
    assert_null(zkit_forwarder_new(&fo));
    assert_int_equal(errno, EINVAL);

    zkit_subscriber_opts_t so = ZKIT_SUBSCRIBER_OPTS_DEFAULT;
    so.connect = "tcp://127.0.0.1:9";
    so.ops.curve_secret = "/nonexistent/zkit_secret";
    so.ops.curve_server = "/nonexistent/zkit";
    assert_null(zkit_subscriber_new(&so));

    zkit_publisher_opts_t po = ZKIT_PUBLISHER_OPTS_DEFAULT;
    po.name = "p";
    po.bind = ANY;
    po.ops.control = "tcp://bad";
    assert_null(zkit_publisher_new(&po));
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publisher_prefix_cap_and_pause),
        cmocka_unit_test(test_forwarder_filters_frames),
        cmocka_unit_test(test_bad_ops_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
