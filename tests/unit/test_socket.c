/*  test_socket: the one place zkit makes sockets guards czmq's LINGER=0 default.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/socket.h"

static void test_options_are_set_explicitly(void **state)
{
    (void) state;
    zkit__socket_opts_t opts = ZKIT__SOCKET_OPTS_DEFAULT;
    opts.sndhwm = 123;
    opts.rcvhwm = 456;
    opts.maxmsgsize = 4096;
    zsock_t *sock = zkit__socket_new(ZMQ_PUSH, &opts);
    assert_non_null(sock);
    assert_int_equal(zsock_linger(sock), 30000);
    assert_int_equal(zsock_sndhwm(sock), 123);
    assert_int_equal(zsock_rcvhwm(sock), 456);
    assert_int_equal(zsock_maxmsgsize(sock), 4096);
    zkit__socket_close(&sock, 0);
    assert_null(sock);

    /* With no opts, the defaults apply, never czmq's LINGER=0. */
    sock = zkit__socket_new(ZMQ_PULL, NULL);
    assert_non_null(sock);
    assert_int_equal(zsock_linger(sock), 30000);
    zkit__socket_close(&sock, 0);
}

/*  The behaviour the guard exists for: messages queued to a peer that is not
    there yet still arrive after the sender's socket is destroyed.           */
static void test_close_delivers_queued_messages(void **state)
{
    (void) state;
    /* An ipc endpoint nobody is bound to yet. Not a released tcp port: a
       loopback connect that keeps retrying to a free port in the ephemeral
       range can connect to itself (source port = destination port) and hold
       the port, so the late bind below would fail. */
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/zkit-test-socket-%d.ipc", (int) getpid());
    unlink(endpoint + strlen("ipc://"));
    zsock_t *push = zkit__socket_new(ZMQ_PUSH, NULL);
    assert_non_null(push);
    assert_int_equal(zkit__socket_attach(push, endpoint, false), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(zstr_sendf(push, "message %d", i), 0);
    zkit__socket_close(&push, 10000);

    zsock_t *pull = zkit__socket_new(ZMQ_PULL, NULL);
    assert_non_null(pull);
    assert_int_equal(zkit__socket_attach(pull, endpoint, true), 0);
    zsock_set_rcvtimeo(pull, 10000);
    for (int i = 0; i < 100; i++) {
        char *got = zstr_recv(pull);
        assert_non_null(got);
        char want[32];
        snprintf(want, sizeof want, "message %d", i);
        assert_string_equal(got, want);
        zstr_free(&got);
    }
    zkit__socket_close(&pull, 0);
    unlink(endpoint + strlen("ipc://"));
}

static void test_attach_reports_bad_endpoint(void **state)
{
    (void) state;
    zsock_t *sock = zkit__socket_new(ZMQ_PUSH, NULL);
    assert_non_null(sock);
    assert_int_equal(zkit__socket_attach(sock, "nonsense://x", true), -1);
    assert_int_equal(zkit__socket_attach(sock, "", false), -1);
    assert_int_equal(zkit__socket_attach(sock, NULL, false), -1);
    /* A list attaches every endpoint; the second bind here is distinct. */
    assert_int_equal(zkit__socket_attach(sock, "inproc://a,inproc://b", true), 0);
    char endpoint[256];
    assert_int_equal(zkit__socket_last_endpoint(sock, endpoint, sizeof endpoint), 0);
    assert_string_equal(endpoint, "inproc://b");
    zkit__socket_close(&sock, ZKIT__LINGER_KEEP);
    assert_null(sock);
    zkit__socket_close(&sock, 0); /* idempotent on NULL */
    assert_string_equal(zkit__socket_type_name(ZMQ_ROUTER), "ROUTER");
    assert_string_equal(zkit__socket_type_name(-7), "?");
}

/*  ':*' binds get their port from the kernel, resolved for the caller.      */
static void test_ephemeral_binds_get_distinct_ports(void **state)
{
    (void) state;
    zsock_t *a = zkit__socket_new(ZMQ_PULL, NULL);
    zsock_t *b = zkit__socket_new(ZMQ_PULL, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(zkit__socket_attach(a, "tcp://127.0.0.1:*", true), 0);
    assert_int_equal(zkit__socket_attach(b, "tcp://127.0.0.1:*", true), 0);
    char ea[256], eb[256];
    assert_int_equal(zkit__socket_last_endpoint(a, ea, sizeof ea), 0);
    assert_int_equal(zkit__socket_last_endpoint(b, eb, sizeof eb), 0);
    assert_memory_equal(ea, "tcp://127.0.0.1:", 16);
    assert_true(atoi(ea + 16) > 0);
    assert_string_not_equal(ea, eb);
    zkit__socket_close(&a, 0);
    zkit__socket_close(&b, 0);
}

/*  new_bound: options (ROUTER flags included) are set, every endpoint of
    the list is bound and the last one comes back resolved; a failure leaves
    no socket behind.                                                        */
static void test_new_bound(void **state)
{
    (void) state;
    zkit__socket_opts_t opts = ZKIT__SOCKET_OPTS_DEFAULT;
    opts.sndhwm = 77;
    opts.router_mandatory = opts.router_handover = true;
    char endpoint[256] = "x";
    zsock_t *sock = zkit__socket_new_bound(ZMQ_ROUTER, &opts, "inproc://nb-a,tcp://127.0.0.1:*",
                                           endpoint, sizeof endpoint);
    assert_non_null(sock);
    assert_int_equal(zsock_sndhwm(sock), 77);
    assert_memory_equal(endpoint, "tcp://127.0.0.1:", 16);
    assert_true(atoi(endpoint + 16) > 0);
    /* MANDATORY: a send to an unknown peer fails instead of vanishing. */
    assert_int_equal(zmq_send(zsock_resolve(sock), "nobody", 6, ZMQ_SNDMORE), -1);
    assert_int_equal(errno, EHOSTUNREACH);
    /* Both endpoints were bound: the inproc one is taken now. */
    zsock_t *again = zkit__socket_new_bound(ZMQ_ROUTER, NULL, "inproc://nb-a", endpoint, 4);
    assert_null(again);
    assert_int_equal(errno, EADDRINUSE);
    zkit__socket_close(&sock, 0);

    /* Too small a buffer for the resolved endpoint is an error, not "". */
    sock = zkit__socket_new_bound(ZMQ_PULL, NULL, "inproc://nb-long-name", endpoint, 8);
    assert_null(sock);
    assert_int_equal(errno, EINVAL);
    /* The bind-only half on an existing socket. */
    sock = zkit__socket_new(ZMQ_PULL, NULL);
    assert_non_null(sock);
    assert_int_equal(zkit__socket_bind(sock, "inproc://nb-b", endpoint, sizeof endpoint), 0);
    assert_string_equal(endpoint, "inproc://nb-b");
    assert_int_equal(zkit__socket_bind(sock, "nonsense://x", endpoint, sizeof endpoint), -1);
    zkit__socket_close(&sock, 0);
}

/*  Each call names a new endpoint, so a socket made for a new object never
    collides with one still unbinding for an object destroyed at the same
    address.                                                                 */
static void test_inproc_endpoints_are_never_reused(void **state)
{
    (void) state;
    char first[64], second[64];
    zkit__socket_inproc_endpoint(first, sizeof first, "unit");
    zkit__socket_inproc_endpoint(second, sizeof second, "unit");
    assert_int_equal(strncmp(first, "inproc://zkit-unit-", 19), 0);
    assert_string_not_equal(first, second);
    zsock_t *a = zkit__socket_new(ZMQ_PAIR, NULL);
    zsock_t *b = zkit__socket_new(ZMQ_PAIR, NULL);
    assert_int_equal(zkit__socket_attach(a, first, true), 0);
    assert_int_equal(zkit__socket_attach(b, second, true), 0);
    zkit__socket_close(&a, 0);
    zkit__socket_close(&b, 0);
    char tiny[16];
    zkit__socket_inproc_endpoint(tiny, sizeof tiny, "a-long-kind");
    assert_int_equal(strlen(tiny), sizeof tiny - 1); /* cut, terminated */
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_are_set_explicitly),
        cmocka_unit_test(test_close_delivers_queued_messages),
        cmocka_unit_test(test_attach_reports_bad_endpoint),
        cmocka_unit_test(test_ephemeral_binds_get_distinct_ports),
        cmocka_unit_test(test_new_bound),
        cmocka_unit_test(test_inproc_endpoints_are_never_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
