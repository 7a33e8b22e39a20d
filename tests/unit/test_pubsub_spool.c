/*  test_pubsub_spool: a publisher whose replay buffer is backed by a spool
    (opts.replay_spool_dir). Restarted on the same directory it keeps its
    epoch, goes on with the next seq, and serves FETCH for what it published
    before the restart from the spool.

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

#include "pubsub/protocol.h"
#include "zkit_publisher.h"

#define DEADLINE 10000

static zkit_publisher_t *s_pub(const char *dir)
{
    zkit_publisher_opts_t opts = ZKIT_PUBLISHER_OPTS_DEFAULT;
    opts.name = "spooled";
    opts.bind = "tcp://127.0.0.1:*";
    opts.replay_bind = "tcp://127.0.0.1:*";
    opts.replay_capacity = 50; /* the ring alone could not serve 1..100 */
    opts.replay_spool_dir = dir;
    zkit_publisher_t *pub = zkit_publisher_new(&opts);
    assert_non_null(pub);
    return pub;
}

static void s_publish(zkit_publisher_t *pub, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "m%d", i);
        assert_int_equal(zkit_publisher_publish(pub, "t", body, (size_t) len, 0), 0);
    }
}

/* FETCH [from, to] until END; every REPLAY must be the next seq, of this
   epoch, with its body. Returns the END.                                  */
static void s_fetch(zkit_publisher_t *pub, uint64_t from, uint64_t to, zkit__pubsub_msg_t *end)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    assert_non_null(sock);
    zsock_set_linger(sock, 0);
    zsock_set_rcvtimeo(sock, DEADLINE);
    assert_int_equal(zsock_connect(sock, "%s", zkit_publisher_replay_endpoint(pub)), 0);
    uint64_t next = from;
    zkit_envelope_t *env = zkit_envelope_new();
    while (next <= to) {
        zkit__pubsub_msg_t req;
        memset(&req, 0, sizeof req);
        req.cmd = ZKIT__PUBSUB_FETCH;
        strcpy(req.src, "spooled");
        req.epoch = zkit_publisher_epoch(pub);
        req.from = next;
        req.to = to;
        assert_int_equal(zkit__pubsub_send(zsock_resolve(sock), NULL, 0, &req), 0);
        while (true) {
            zkit__pubsub_frames_t f;
            assert_int_equal(zkit__pubsub_recv(zsock_resolve(sock), &f, 0), 0);
            zkit__pubsub_msg_t m;
            assert_int_equal(zkit__pubsub_parse(&f, 0, &m, NULL), 0);
            if (m.cmd == ZKIT__PUBSUB_END) {
                *end = m;
                zkit__pubsub_frames_close(&f);
                break;
            }
            assert_int_equal(m.cmd, ZKIT__PUBSUB_REPLAY);
            assert_int_equal(
                zkit_envelope_decode_bytes(env, zmq_msg_data(m.envelope), zmq_msg_size(m.envelope)),
                0);
            assert_int_equal(zkit_envelope_seq(env), next);
            zkit_value_t epoch;
            assert_int_equal(zkit_envelope_header(env, "zkit-epoch", &epoch), 0);
            assert_true((uint64_t) epoch.i == zkit_publisher_epoch(pub));
            char want[32];
            int len = snprintf(want, sizeof want, "m%d", (int) next);
            size_t size;
            const void *body = zkit_envelope_body(env, &size);
            assert_int_equal(size, (size_t) len);
            assert_memory_equal(body, want, size);
            next++;
            zkit__pubsub_frames_close(&f);
        }
        assert_int_equal(end->lost_to, 0);
        assert_true(end->served_to >= from);
        next = end->served_to + 1;
    }
    zkit_envelope_destroy(&env);
    zsock_destroy(&sock);
}

static void test_restart_continues_epoch(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "pubspool");
    zkit_publisher_t *pub = s_pub(dir);
    uint64_t epoch = zkit_publisher_epoch(pub);
    s_publish(pub, 1, 100);
    zkit_publisher_stats_t st;
    assert_int_equal(zkit_publisher_stats(pub, &st), 0);
    assert_int_equal(st.last_seq, 100);
    zkit_publisher_destroy(&pub);

    pub = s_pub(dir);
    assert_true(zkit_publisher_epoch(pub) == epoch);
    s_publish(pub, 101, 200);
    assert_int_equal(zkit_publisher_stats(pub, &st), 0);
    assert_int_equal(st.last_seq, 200);
    /* PROBE says what can be fetched: from 1, spool and ring together.   */
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    assert_non_null(sock);
    zsock_set_linger(sock, 0);
    zsock_set_rcvtimeo(sock, DEADLINE);
    assert_int_equal(zsock_connect(sock, "%s", zkit_publisher_replay_endpoint(pub)), 0);
    zkit__pubsub_msg_t probe;
    memset(&probe, 0, sizeof probe);
    probe.cmd = ZKIT__PUBSUB_PROBE;
    strcpy(probe.src, "spooled");
    assert_int_equal(zkit__pubsub_send(zsock_resolve(sock), NULL, 0, &probe), 0);
    zkit__pubsub_frames_t f;
    assert_int_equal(zkit__pubsub_recv(zsock_resolve(sock), &f, 0), 0);
    assert_int_equal(zkit__pubsub_parse(&f, 0, &probe, NULL), 0);
    assert_int_equal(probe.cmd, ZKIT__PUBSUB_STATUS);
    assert_int_equal(probe.first, 1);
    assert_int_equal(probe.last, 200);
    assert_true(probe.epoch == epoch);
    zkit__pubsub_frames_close(&f);
    zsock_destroy(&sock);
    zkit__pubsub_msg_t end;
    s_fetch(pub, 1, 100, &end); /* from the spool: before the restart */
    assert_int_equal(end.last, 200);
    s_fetch(pub, 101, 200, &end); /* ring */
    s_fetch(pub, 90, 120, &end);  /* across both */
    zkit_publisher_destroy(&pub);
    tu_rmrf(dir);
}

/*  Another name, or an explicit other epoch, on the same directory: a new
    stream, from seq 1; the old records are never served for it.           */
static void test_other_stream_starts_fresh(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "pubspool");
    zkit_publisher_t *pub = s_pub(dir);
    s_publish(pub, 1, 10);
    uint64_t epoch = zkit_publisher_epoch(pub);
    zkit_publisher_destroy(&pub);
    zkit_publisher_opts_t opts = ZKIT_PUBLISHER_OPTS_DEFAULT;
    opts.name = "spooled";
    opts.bind = "tcp://127.0.0.1:*";
    opts.replay_bind = "tcp://127.0.0.1:*";
    opts.replay_spool_dir = dir;
    opts.epoch = epoch + 1;
    pub = zkit_publisher_new(&opts);
    assert_non_null(pub);
    assert_true(zkit_publisher_epoch(pub) == epoch + 1);
    s_publish(pub, 1, 5);
    zkit_publisher_stats_t st;
    assert_int_equal(zkit_publisher_stats(pub, &st), 0);
    assert_int_equal(st.last_seq, 5);
    zkit__pubsub_msg_t end;
    s_fetch(pub, 1, 5, &end);
    zkit_publisher_destroy(&pub);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_continues_epoch),
        cmocka_unit_test(test_other_stream_starts_fresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
