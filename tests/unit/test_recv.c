/*  test_recv: one whole multipart message into a bounded set of frames.

    Frames are sent zero-copy (zmq_msg_init_data) over inproc, which hands
    the very same buffer to the receiver, so the free function counts every
    frame the receiving side closed: a frame leaked shows as freed < sent,
    in the plain build too, not only under LeakSanitizer.

    A socket error part way through a message cannot be had from libzmq on
    demand, so this file defines zmq_msg_recv itself (the executable's
    definition wins over libzmq's for the zkit code linked in) and forwards
    to the real one until told to fail.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "core/recv.h"

/* ---- zmq_msg_recv that fails on demand ----------------------------------- */

static int s_fail_after = -1; /* calls to let through before failing; -1: never */
static int s_fail_errno;
static int s_fail_times; /* how many calls in a row then fail */

int zmq_msg_recv(zmq_msg_t *msg, void *socket, int flags)
{
    static int (*real)(zmq_msg_t *, void *, int);
    if (!real)
        *(void **) &real = dlsym(RTLD_NEXT, "zmq_msg_recv");
    if (s_fail_after == 0 && s_fail_times > 0) {
        s_fail_times--;
        errno = s_fail_errno;
        return -1;
    }
    if (s_fail_after > 0)
        s_fail_after--;
    return real(msg, socket, flags);
}

static void s_fail(int after, int err, int times)
{
    s_fail_after = after;
    s_fail_errno = err;
    s_fail_times = times;
}

/* ---- a PAIR of inproc sockets and frames that count their frees ------------ */

typedef struct {
    void *ctx, *tx, *rx;
} s_pair_t;

static size_t s_sent, s_freed;

static void s_free(void *data, void *hint)
{
    (void) hint;
    free(data);
    s_freed++;
}

static int s_setup(void **state)
{
    static s_pair_t pair;
    pair.ctx = zmq_ctx_new();
    pair.tx = zmq_socket(pair.ctx, ZMQ_PAIR);
    pair.rx = zmq_socket(pair.ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(pair.rx, "inproc://test-recv"), 0);
    assert_int_equal(zmq_connect(pair.tx, "inproc://test-recv"), 0);
    s_sent = s_freed = 0;
    s_fail(-1, 0, 0);
    *state = &pair;
    return 0;
}

static int s_teardown(void **state)
{
    s_pair_t *pair = *state;
    zmq_close(pair->tx);
    zmq_close(pair->rx);
    zmq_ctx_term(pair->ctx);
    /* Whatever was left in the pipe went with the sockets: all freed.      */
    assert_int_equal(s_freed, s_sent);
    return 0;
}

/*  Sends count frames as one message; frame i holds size[i] bytes of 'a'+i. */
static void s_send(s_pair_t *pair, size_t count, const size_t *size)
{
    for (size_t i = 0; i < count; i++) {
        zmq_msg_t frame;
        char *data = malloc(size[i] ? size[i] : 1);
        assert_non_null(data);
        memset(data, 'a' + (int) (i % 26), size[i]);
        assert_int_equal(zmq_msg_init_data(&frame, data, size[i], s_free, NULL), 0);
        s_sent++;
        int flags = i + 1 < count ? ZMQ_SNDMORE : 0;
        assert_int_equal(zmq_msg_send(&frame, pair->tx, flags), (int) size[i]);
    }
}

static void s_send_n(s_pair_t *pair, size_t count, size_t each)
{
    size_t size[64];
    assert_true(count <= 64);
    for (size_t i = 0; i < count; i++)
        size[i] = each;
    s_send(pair, count, size);
}

/*  Receives with max and flags, expecting success with these counts.       */
static void s_recv_ok(s_pair_t *pair, zkit__recv_t *msg, size_t max, int flags, size_t count,
                      size_t dropped, size_t bytes)
{
    assert_int_equal(zkit__recv(pair->rx, msg, max, flags), 0);
    assert_int_equal(msg->count, count);
    assert_int_equal(msg->dropped, dropped);
    assert_int_equal(msg->bytes, bytes);
}

/*  Receives expecting -1 with errno err and nothing held.                  */
static void s_recv_fails(s_pair_t *pair, zkit__recv_t *msg, size_t max, int err)
{
    msg->count = 99;
    assert_int_equal(zkit__recv(pair->rx, msg, max, ZMQ_DONTWAIT), -1);
    assert_int_equal(errno, err);
    assert_int_equal(msg->count, 0);
    assert_int_equal(msg->dropped, 0);
    zkit__recv_close(msg); /* harmless on a message that was never filled */
}

/* ---- tests -------------------------------------------------------------------- */

static void test_nothing_waiting(void **state)
{
    s_pair_t *pair = *state;
    zkit__recv_t msg;
    s_recv_fails(pair, &msg, 4, EAGAIN);
}

static void test_fewer_frames_than_the_limit(void **state)
{
    s_pair_t *pair = *state;
    const size_t size[] = {3, 100, 7};
    s_send(pair, 3, size);
    zkit__recv_t msg;
    s_recv_ok(pair, &msg, 4, ZMQ_DONTWAIT, 3, 0, 110);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(zmq_msg_size(&msg.part[i]), size[i]);
        assert_int_equal(((char *) zmq_msg_data(&msg.part[i]))[0], 'a' + (int) i);
    }
    assert_int_equal(s_freed, 0); /* held, not closed */
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, 3);
    zkit__recv_close(&msg); /* twice is safe */
    assert_int_equal(msg.count, 0);
}

static void test_exactly_the_limit(void **state)
{
    s_pair_t *pair = *state;
    s_send_n(pair, 4, 50);
    zkit__recv_t msg;
    s_recv_ok(pair, &msg, 4, 0, 4, 0, 200);
    assert_int_equal(((char *) zmq_msg_data(&msg.part[3]))[0], 'd');
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, 4);
}

/*  Past the limit: the extra frames are read (the next message comes out
    whole, in step), closed at once, counted, and their bytes still count. */
static void test_more_than_the_limit(void **state)
{
    s_pair_t *pair = *state;
    s_send_n(pair, 20, 40);
    const size_t next[] = {5};
    s_send(pair, 1, next);
    zkit__recv_t msg;
    s_recv_ok(pair, &msg, 4, ZMQ_DONTWAIT, 4, 16, 800);
    assert_int_equal(s_freed, 16); /* the dropped ones are gone already */
    zkit__recv_close(&msg);
    assert_int_equal(msg.dropped, 0);
    s_recv_ok(pair, &msg, 4, ZMQ_DONTWAIT, 1, 0, 5);
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, 21);
}

/*  The limit is clamped: 0 keeps one frame, more than the struct holds
    keeps ZKIT__RECV_PARTS_MAX; never a write past part[].                  */
static void test_limit_is_clamped(void **state)
{
    s_pair_t *pair = *state;
    zkit__recv_t msg;
    s_send_n(pair, 3, 1);
    s_recv_ok(pair, &msg, 0, ZMQ_DONTWAIT, 1, 2, 3);
    zkit__recv_close(&msg);
    s_send_n(pair, ZKIT__RECV_PARTS_MAX + 9, 2);
    s_recv_ok(pair, &msg, SIZE_MAX, ZMQ_DONTWAIT, ZKIT__RECV_PARTS_MAX, 9,
              2 * (ZKIT__RECV_PARTS_MAX + 9));
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, s_sent);
}

static void test_empty_frames(void **state)
{
    s_pair_t *pair = *state;
    const size_t size[] = {0, 0, 9, 0, 0, 0};
    s_send(pair, 6, size);
    zkit__recv_t msg;
    s_recv_ok(pair, &msg, 4, ZMQ_DONTWAIT, 4, 2, 9);
    assert_int_equal(zmq_msg_size(&msg.part[0]), 0);
    assert_int_equal(zmq_msg_size(&msg.part[2]), 9);
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, 6);
}

/*  A signal part way through: the rest of the message is there, so it is
    read again and the message comes out whole.                             */
static void test_interrupted_part_way_is_read_whole(void **state)
{
    s_pair_t *pair = *state;
    s_send_n(pair, 6, 40);
    zkit__recv_t msg;
    s_fail(2, EINTR, 3);
    s_recv_ok(pair, &msg, 4, ZMQ_DONTWAIT, 4, 2, 240);
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, 6);
}

/*  Any other error part way (ETERM at shutdown, say): -1 with that errno,
    nothing held and nothing leaked, frames kept and dropped alike.        */
static void test_error_part_way_leaks_nothing(void **state)
{
    s_pair_t *pair = *state;
    zkit__recv_t msg;
    s_send_n(pair, 5, 40);
    s_fail(2, ETERM, 1);
    s_recv_fails(pair, &msg, 4, ETERM);
    assert_int_equal(s_freed, 2); /* the two read were closed */
    /* Past the limit already, with frames dropped: still nothing held.   */
    s_send_n(pair, 8, 40);
    s_recv_ok(pair, &msg, 8, 0, 3, 0, 120); /* the rest of the first */
    zkit__recv_close(&msg);
    s_fail(6, ENOTSOCK, 1);
    s_recv_fails(pair, &msg, 2, ENOTSOCK);
    assert_int_equal(s_freed, 5 + 6);
    /* An error on the first frame leaves the socket as it was.            */
    s_fail(0, EINTR, 1);
    s_recv_fails(pair, &msg, 2, EINTR);
    s_recv_ok(pair, &msg, 4, ZMQ_DONTWAIT, 2, 0, 80); /* the second's last two */
    zkit__recv_close(&msg);
    assert_int_equal(s_freed, s_sent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nothing_waiting, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fewer_frames_than_the_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_exactly_the_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_more_than_the_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limit_is_clamped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_empty_frames, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_part_way_is_read_whole, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_error_part_way_leaks_nothing, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
