/*  test_spool_device: what the spool device added to the spool, and the
    device itself in-process.

    - zkit_spool_append_nosync: records are invisible and not synced until
      one zkit_spool_sync covers the whole burst (one fdatasync).
    - A failed roll (no space for the next segment) after unsynced appends:
      the roll's sync of the old segment makes its records durable, and they
      must be visible too (this was a bug: they stayed hidden).
    - zkit_spool_verify_regions says where each bad region is.
    - The device: PUT, CONFIRMED, READY, DELIVER with att, ACK, the spool
      empty afterwards; a resent PUT confirmed from the dedup window rebuilt
      after a restart; bad options; a second device on the same directory.
    - PAUSE / RESUME on the control endpoint, the byte counters, and a
      malformed PUT counted as bad input, not as a PUT.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <czmq.h>

#include "test_control_util.h"
#include "test_spool_util.h"
#include "test_wait_util.h"
#include "zkit.h"

#define RECORD 100

static int s_visible(zkit_spool_t *spool)
{
    uint64_t seqs[64];
    return tu_read_all(spool, seqs, 64, true);
}

static void test_append_nosync_is_one_group_commit(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "sdev-nosync");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    uint8_t buf[RECORD];
    uint64_t seq = 0;
    assert_int_equal(zkit_spool_append_nosync(spool, buf, tu_payload(buf, RECORD, 1, RECORD), &seq),
                     0);
    assert_int_equal(seq, 1);
    int syncs = tu_fault_get(&fault, &fault.fdatasyncs); /* the new segment's own */
    for (uint64_t i = 2; i <= 5; i++)
        assert_int_equal(
            zkit_spool_append_nosync(spool, buf, tu_payload(buf, RECORD, i, RECORD), &seq), 0);
    assert_int_equal(seq, 5);
    assert_int_equal(tu_fault_get(&fault, &fault.fdatasyncs), syncs);
    assert_int_equal(s_visible(spool), 0); /* not durable: not readable */
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.synced_seq, 0);
    assert_int_equal(zkit_spool_sync(spool), 0);
    assert_int_equal(tu_fault_get(&fault, &fault.fdatasyncs), syncs + 1);
    assert_int_equal(s_visible(spool), 5);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.synced_seq, 5);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

static void test_failed_roll_keeps_synced_records_visible(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "sdev-roll");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    opts.segment_size = 512; /* 64 + 3 x 136: the fourth record rolls */
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    uint8_t buf[RECORD];
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(
            zkit_spool_append_nosync(spool, buf, tu_payload(buf, RECORD, i, RECORD), NULL), 0);
    tu_fault_disk_space(&fault, 0, ENOSPC); /* the disk is full: the next segment cannot be made */
    assert_int_equal(zkit_spool_append_nosync(spool, buf, tu_payload(buf, RECORD, 4, RECORD), NULL),
                     -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(zkit_spool_sync(spool), 0);
    assert_int_equal(s_visible(spool), 3);
    tu_fault_disk_space(&fault, -1, ENOSPC); /* space is back */
    uint64_t seq = 0;
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, RECORD, 4, RECORD), &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(s_visible(spool), 4);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

typedef struct {
    int calls;
    char segment[64];
    zkit_spool_bad_region_t region;
} s_bad_t;

static void s_on_bad(const zkit_spool_bad_region_t *region, void *arg)
{
    s_bad_t *bad = arg;
    bad->calls++;
    bad->region = *region;
    snprintf(bad->segment, sizeof bad->segment, "%s", region->segment);
}

static void test_verify_regions_says_where(void **state)
{
    (void) state;
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir, "sdev-verify");
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.fsync = ZKIT_SPOOL_FSYNC_NEVER;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    uint8_t buf[RECORD];
    for (uint64_t i = 1; i <= 5; i++)
        assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, RECORD, i, RECORD), NULL),
                         0);
    zkit_spool_destroy(&spool);
    /* Flip a payload byte of record 3: 64 + 2 x 136 is where it starts.  */
    tu_seg_path(path, sizeof path, dir, 1);
    size_t size;
    uint8_t *data = tu_read(path, &size);
    assert_non_null(data);
    uint64_t at = 64 + 2 * 136;
    data[at + 32 + 10] ^= 0x40;
    assert_int_equal(tu_write(path, data, size), 0);
    free(data);

    opts.read_only = true;
    spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    s_bad_t bad = {0};
    zkit_spool_verify_t report;
    assert_int_equal(zkit_spool_verify_regions(spool, &report, s_on_bad, &bad), 1);
    assert_int_equal(bad.calls, 1);
    assert_string_equal(bad.segment, "0000000000000001.zseg");
    assert_int_equal(bad.region.offset, at);
    assert_int_equal(bad.region.size, 136);
    assert_int_equal(bad.region.lost_start, 3);
    assert_int_equal(bad.region.lost_end, 4);
    assert_string_equal(bad.region.reason, "data-crc");
    assert_int_equal(report.records, 4);
    /* Without a callback: the same verdict. */
    assert_int_equal(zkit_spool_verify(spool, &report), 1);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

/* ---- the device ------------------------------------------------------------------ */

static zkit_spool_device_t *s_device(const char *dir)
{
    zkit_spool_device_opts_t opts = ZKIT_SPOOL_DEVICE_OPTS_DEFAULT;
    opts.dir = dir;
    opts.in = "tcp://127.0.0.1:*";
    opts.out = "tcp://127.0.0.1:*";
    return zkit_spool_device_new(&opts);
}

/* A fresh directory named after the test (dir holds 256 bytes) and a
   device on it.                                                             */
static zkit_spool_device_t *s_fresh_device(char *dir, const char *name)
{
    tu_tmpdir(dir, 256, name);
    zkit_spool_device_t *dev = s_device(dir);
    assert_non_null(dev);
    return dev;
}

static zmsg_t *s_recv(zsock_t *sock)
{
    zsock_set_rcvtimeo(sock, 10000);
    zmsg_t *msg = zmsg_recv(sock);
    assert_non_null(msg);
    return msg;
}

static void test_device_put_deliver_ack(void **state)
{
    (void) state;
    char dir[256];
    zkit_spool_device_t *dev = s_fresh_device(dir, "sdev-device");
    zsock_t *prod = zsock_new_dealer(zkit_spool_device_in(dev));
    zsock_t *cons = zsock_new_dealer(zkit_spool_device_out(dev));
    assert_non_null(prod);
    assert_non_null(cons);
    uint8_t ids[10][16];
    for (int i = 0; i < 10; i++) {
        zkit_id_generate(ids[i]);
        zkit_envelope_t *env = zkit_envelope_new();
        zkit_envelope_set_id(env, ids[i]);
        zkit_envelope_set_seq(env, (uint64_t) i + 1);
        zmq_msg_t frame;
        assert_int_equal(zkit_envelope_encode(env, &frame), 0);
        zmq_send(zsock_resolve(prod), "PUT", 3, ZMQ_SNDMORE);
        zmq_msg_send(&frame, zsock_resolve(prod), 0);
        zkit_envelope_destroy(&env);
    }
    int confirmed = 0;
    while (confirmed < 10) {
        zmsg_t *msg = s_recv(prod);
        char *cmd = zmsg_popstr(msg);
        assert_string_equal(cmd, "CONFIRMED");
        zframe_t *list = zmsg_pop(msg);
        assert_int_equal(zframe_size(list) % 16, 0);
        for (size_t k = 0; k < zframe_size(list) / 16; k++)
            assert_memory_equal(zframe_data(list) + 16 * k, ids[confirmed + k], 16);
        confirmed += (int) (zframe_size(list) / 16);
        zframe_destroy(&list);
        free(cmd);
        zmsg_destroy(&msg);
    }
    zsock_send(cons, "ss", "READY", "4");
    zkit_envelope_t *in = zkit_envelope_new();
    for (int i = 0; i < 10; i++) {
        zmsg_t *msg = s_recv(cons);
        char *cmd = zmsg_popstr(msg);
        if (!strcmp(cmd, "HEARTBEAT")) {
            free(cmd);
            zmsg_destroy(&msg);
            i--;
            continue;
        }
        assert_string_equal(cmd, "DELIVER");
        zframe_t *frame = zmsg_pop(msg);
        assert_int_equal(zkit_envelope_decode_bytes(in, zframe_data(frame), zframe_size(frame)), 0);
        assert_memory_equal(zkit_envelope_id(in), ids[i], 16); /* FIFO, id kept */
        assert_int_equal(zkit_envelope_seq(in), (uint64_t) i + 1);
        assert_int_equal(zkit_envelope_att(in), 1);
        zsock_send(cons, "sb", "ACK", ids[i], (size_t) 16);
        zframe_destroy(&frame);
        free(cmd);
        zmsg_destroy(&msg);
    }
    zkit_spool_device_stats_t st;
    /* Acks are read by the device's thread: wait (bounded) for all ten.   */
    TEST_WAIT_UNTIL(assert_int_equal(zkit_spool_device_stats(dev, &st), 0), st.acked == 10, 10000);
    assert_int_equal(st.stored, 10);
    assert_int_equal(st.confirmed, 10);
    assert_int_equal(st.acked, 10);
    assert_int_equal(st.delivered, 10);
    assert_true(st.group_commits >= 1 && st.group_commits <= 10);
    assert_int_equal(st.spool.unacked, 0);
    zkit_envelope_destroy(&in);
    zsock_destroy(&prod);
    zsock_destroy(&cons);
    zkit_spool_device_destroy(&dev);
    assert_null(dev);

    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats_t ss;
    zkit_spool_stats(spool, &ss);
    assert_int_equal(ss.unacked, 0);
    assert_int_equal(ss.next_seq, 11);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

static void test_device_dedup_survives_restart(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "sdev-dedup");
    uint8_t id[16];
    zkit_id_generate(id);
    for (int run = 0; run < 2; run++) {
        zkit_spool_device_t *dev = s_device(dir);
        assert_non_null(dev);
        zsock_t *prod = zsock_new_dealer(zkit_spool_device_in(dev));
        zkit_envelope_t *env = zkit_envelope_new();
        zkit_envelope_set_id(env, id);
        zmq_msg_t frame;
        assert_int_equal(zkit_envelope_encode(env, &frame), 0);
        zmq_send(zsock_resolve(prod), "PUT", 3, ZMQ_SNDMORE);
        zmq_msg_send(&frame, zsock_resolve(prod), 0);
        zkit_envelope_destroy(&env);
        zmsg_t *msg = s_recv(prod);
        char *cmd = zmsg_popstr(msg);
        assert_string_equal(cmd, "CONFIRMED");
        zframe_t *list = zmsg_pop(msg);
        assert_int_equal(zframe_size(list), 16);
        assert_memory_equal(zframe_data(list), id, 16);
        zframe_destroy(&list);
        free(cmd);
        zmsg_destroy(&msg);
        zkit_spool_device_stats_t st;
        assert_int_equal(zkit_spool_device_stats(dev, &st), 0);
        assert_int_equal(st.stored, run == 0 ? 1 : 0);
        assert_int_equal(st.duplicates, run == 0 ? 0 : 1);
        assert_int_equal(st.spool.next_seq, 2);
        zsock_destroy(&prod);
        zkit_spool_device_destroy(&dev);
    }
    tu_rmrf(dir);
}

/* Sends one PUT of a fresh envelope; returns its encoded size.             */
static size_t s_put(zsock_t *prod, uint8_t id[16], uint64_t seq)
{
    zkit_id_generate(id);
    zkit_envelope_t *env = zkit_envelope_new();
    zkit_envelope_set_id(env, id);
    zkit_envelope_set_seq(env, seq);
    zmq_msg_t frame;
    assert_int_equal(zkit_envelope_encode(env, &frame), 0);
    size_t size = zmq_msg_size(&frame);
    zmq_send(zsock_resolve(prod), "PUT", 3, ZMQ_SNDMORE);
    zmq_msg_send(&frame, zsock_resolve(prod), 0);
    zkit_envelope_destroy(&env);
    return size;
}

/* The next DELIVER (heartbeats skipped); returns its envelope frame size.  */
static size_t s_next_deliver(zsock_t *cons)
{
    for (;;) {
        zmsg_t *msg = s_recv(cons);
        char *cmd = zmsg_popstr(msg);
        size_t size = 0;
        bool deliver = !strcmp(cmd, "DELIVER");
        if (deliver)
            size = zframe_size(zmsg_first(msg));
        else
            assert_string_equal(cmd, "HEARTBEAT");
        free(cmd);
        zmsg_destroy(&msg);
        if (deliver)
            return size;
    }
}

/*  PAUSE on the control endpoint: PUTs are still stored and confirmed, no
    DELIVER leaves; RESUME delivers. Byte counters and a malformed PUT (not
    counted as a PUT, counted as a bad envelope) pinned in C.               */
static void test_device_control_pause_resume(void **state)
{
    (void) state;
    char dir[256];
    zkit_spool_device_t *dev = s_fresh_device(dir, "sdev-control");
    assert_null(zkit_spool_device_control(dev));
    zkit_spool_device_destroy(&dev);

    zkit_spool_device_opts_t opts = ZKIT_SPOOL_DEVICE_OPTS_DEFAULT;
    opts.dir = dir;
    opts.in = "tcp://127.0.0.1:*";
    opts.out = "tcp://127.0.0.1:*";
    opts.ops.control = "tcp://127.0.0.1:*";
    dev = zkit_spool_device_new(&opts);
    assert_non_null(dev);
    const char *control = zkit_spool_device_control(dev);
    assert_non_null(control);
    assert_true(strncmp(control, "tcp://127.0.0.1:", 16) == 0 && strcmp(control + 16, "*"));
    test_control_expect(control, "PAUSE", "OK paused");

    zsock_t *prod = zsock_new_dealer(zkit_spool_device_in(dev));
    zsock_t *cons = zsock_new_dealer(zkit_spool_device_out(dev));
    assert_non_null(prod);
    assert_non_null(cons);
    zsock_send(cons, "ss", "READY", "10");
    zsock_send(prod, "ss", "PUT", "\x93not an envelope");
    uint8_t ids[3][16];
    size_t bytes = 0;
    for (int i = 0; i < 3; i++)
        bytes += s_put(prod, ids[i], (uint64_t) i + 1);
    int confirmed = 0;
    while (confirmed < 3) {
        zmsg_t *msg = s_recv(prod);
        char *cmd = zmsg_popstr(msg);
        assert_string_equal(cmd, "CONFIRMED");
        confirmed += (int) (zframe_size(zmsg_first(msg)) / 16);
        free(cmd);
        zmsg_destroy(&msg);
    }
    zkit_spool_device_stats_t st;
    assert_int_equal(zkit_spool_device_stats(dev, &st), 0);
    assert_true(st.paused);
    assert_int_equal(st.puts, 3);
    assert_int_equal(st.stored, 3);
    assert_int_equal(st.stored_bytes, bytes);
    assert_int_equal(st.bad_in[ZKIT_SPOOL_DEVICE_BAD_ENVELOPE], 1);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(st.spool.unacked, 3);
    /* Nothing is delivered while paused: the consumer's READY was read
       before the PUTs (one thread, consumers first), so a DELIVER would be
       here by the next heartbeat.                                          */
    zpoller_t *poller = zpoller_new(cons, NULL);
    for (void *which = zpoller_wait(poller, 300); which; which = zpoller_wait(poller, 300)) {
        char *cmd = zstr_recv(cons);
        assert_string_equal(cmd, "HEARTBEAT");
        free(cmd);
    }
    zpoller_destroy(&poller);
    test_control_expect(control, "RESUME", "OK resumed");
    size_t delivered_bytes = 0;
    for (int i = 0; i < 3; i++)
        delivered_bytes += s_next_deliver(cons);
    assert_int_equal(zkit_spool_device_stats(dev, &st), 0);
    assert_false(st.paused);
    assert_int_equal(st.delivered, 3);
    assert_int_equal(st.delivered_bytes, delivered_bytes);
    zsock_destroy(&prod);
    zsock_destroy(&cons);
    zkit_spool_device_destroy(&dev);
    tu_rmrf(dir);
}

static void test_device_bad_options_and_busy_dir(void **state)
{
    (void) state;
    assert_null(zkit_spool_device_new(NULL));
    assert_int_equal(errno, EINVAL);
    zkit_spool_device_opts_t opts = ZKIT_SPOOL_DEVICE_OPTS_DEFAULT;
    opts.in = "tcp://127.0.0.1:*";
    opts.out = "tcp://127.0.0.1:*";
    assert_null(zkit_spool_device_new(&opts)); /* no dir */
    assert_int_equal(errno, EINVAL);
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "sdev-busy");
    opts.dir = dir;
    opts.prefetch = 0;
    assert_null(zkit_spool_device_new(&opts));
    assert_int_equal(errno, EINVAL);
    zkit_spool_device_t *dev = s_device(dir);
    assert_non_null(dev);
    assert_null(s_device(dir));
    assert_int_equal(errno, EBUSY);
    opts.prefetch = 10;
    opts.in = "bogus://endpoint";
    zkit_spool_device_destroy(&dev);
    assert_null(zkit_spool_device_new(&opts)); /* bind fails: the spool is released */
    dev = s_device(dir);
    assert_non_null(dev);
    zkit_spool_device_destroy(&dev);
    zkit_spool_device_destroy(&dev); /* idempotent */
    assert_string_equal(zkit_spool_device_reject_name(ZKIT_SPOOL_DEVICE_NOSPACE), "NOSPACE");
    assert_string_equal(zkit_spool_device_reject_name(99), "?");
    assert_string_equal(zkit_spool_device_bad_name(ZKIT_SPOOL_DEVICE_BAD_FIELD), "malformed field");
    tu_rmrf(dir);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_nosync_is_one_group_commit),
        cmocka_unit_test(test_failed_roll_keeps_synced_records_visible),
        cmocka_unit_test(test_verify_regions_says_where),
        cmocka_unit_test(test_device_put_deliver_ack),
        cmocka_unit_test(test_device_dedup_survives_restart),
        cmocka_unit_test(test_device_bad_options_and_busy_dir),
        cmocka_unit_test(test_device_control_pause_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
