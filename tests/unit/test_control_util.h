/*  test_control_util.h: talking to a component's control endpoint from a
    cmocka test, the way `zkit stats` and operators do (a REQ socket, one
    request, one reply, a bounded wait).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef TEST_CONTROL_UTIL_H_INCLUDED
#define TEST_CONTROL_UTIL_H_INCLUDED

#include <czmq.h>
#include <stdlib.h>

/* Include after <cmocka.h>. */

#define TEST_CONTROL_WAIT_MS 10000 /* any one reply, on a loaded machine */

/*  Sends command (one frame) to the control endpoint and returns the
    one-frame text reply (free it). Fails the test when no reply comes in
    TEST_CONTROL_WAIT_MS.                                                    */
static inline char *test_control_request(const char *endpoint, const char *command)
{
    zsock_t *req = zsock_new_req(endpoint);
    assert_non_null(req);
    zsock_set_rcvtimeo(req, TEST_CONTROL_WAIT_MS);
    assert_int_equal(zstr_send(req, command), 0);
    char *reply = zstr_recv(req);
    zsock_destroy(&req);
    assert_non_null(reply);
    return reply;
}

/*  test_control_request and an exact check of the reply.                  */
static inline void test_control_expect(const char *endpoint, const char *command,
                                       const char *expected)
{
    char *reply = test_control_request(endpoint, command);
    assert_string_equal(reply, expected);
    free(reply);
}

#endif
