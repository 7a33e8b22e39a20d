/*  test_spool: CRC-32C, the ack set, appends and reads across rollovers, the
    cursor across reopens, retention by bytes and by age, and the overflow
    policies (block, reject, drop-oldest), each with its counter.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "test_spool_util.h"

#include "spool/ackset.h"
#include "spool/crc32c.h"
#include "spool/spool_internal.h"

/* ---- CRC-32C ----------------------------------------------------------------------- */

static void test_crc32c_vectors(void **state)
{
    (void) state;
    /* The check value of the CRC-32C catalogue entry, and RFC 3720 B.4. */
    assert_int_equal(zkit__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(zkit__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(zkit__crc32c(0, "", 0), 0);
    uint8_t buf[48];
    memset(buf, 0, 32);
    assert_int_equal(zkit__crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, 32);
    assert_int_equal(zkit__crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t) i;
    assert_int_equal(zkit__crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t) (31 - i);
    assert_int_equal(zkit__crc32c(0, buf, 32), 0x113FDB5Cu);
    /* An iSCSI read command PDU (RFC 3720 B.4). */
    static const uint8_t pdu[48] = {0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    0, 0, 0, 0,
                                    0x14, 0,    0, 0, 0, 0, 4, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
                                    0x28, 0,    0, 0, 0, 0, 0, 0, 2, 0, 0, 0,    0, 0, 0, 0};
    assert_int_equal(zkit__crc32c(0, pdu, 48), 0xD9963A56u);
}

static void test_crc32c_hw_matches_sw(void **state)
{
    (void) state;
    uint8_t buf[4096 + 16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t) (i * 2654435761u >> 13);
    bool hw = zkit__crc32c_hw_available();
    if (hw)
        assert_int_equal(zkit__crc32c_hw(0, "123456789", 9), 0xE3069283u);
    /* Every alignment and length up to a few words, then long runs; and
       chaining: crc(a || b) == crc(crc(a), b). */
    for (size_t start = 0; start < 16; start++)
        for (size_t len = 0; len < 80; len++) {
            uint32_t sw = zkit__crc32c_sw(0, buf + start, len);
            if (hw)
                assert_int_equal(zkit__crc32c_hw(0, buf + start, len), sw);
            assert_int_equal(zkit__crc32c(0, buf + start, len), sw);
            for (size_t cut = 0; cut <= len; cut += 7)
                assert_int_equal(zkit__crc32c_sw(zkit__crc32c_sw(0, buf + start, cut),
                                                 buf + start + cut, len - cut),
                                 sw);
        }
    uint32_t sw = zkit__crc32c_sw(0, buf + 3, 4096);
    assert_int_equal(zkit__crc32c(0, buf + 3, 4096), sw);
    if (hw)
        assert_int_equal(zkit__crc32c_hw(0, buf + 3, 4096), sw);
    if (!hw)
        print_message("note: no SSE4.2, hardware CRC-32C not tested\n");
}

/* ---- the ack set ------------------------------------------------------------------- */

static void test_ackset_out_of_order(void **state)
{
    (void) state;
    zkit__ackset_t set;
    zkit__ackset_init(&set);
    assert_int_equal(set.floor, 1);
    assert_int_equal(zkit__ackset_add(&set, 5, 6), 1);
    assert_int_equal(zkit__ackset_add(&set, 5, 6), 0);
    assert_int_equal(zkit__ackset_add(&set, 3, 4), 1);
    assert_int_equal(zkit__ackset_add(&set, 9, 12), 1);
    assert_int_equal(set.count, 3);
    assert_true(zkit__ackset_has(&set, 3));
    assert_false(zkit__ackset_has(&set, 4));
    assert_true(zkit__ackset_has(&set, 11));
    assert_false(zkit__ackset_has(&set, 12));
    assert_int_equal(zkit__ackset_count(&set, 1, 20), 5);
    assert_int_equal(zkit__ackset_top(&set), 12);
    assert_int_equal(zkit__ackset_next_unacked(&set, 9), 12);
    assert_int_equal(zkit__ackset_add(&set, 4, 5), 1); /* joins 3 and 5 */
    assert_int_equal(set.count, 2);
    assert_int_equal(zkit__ackset_add(&set, 1, 3), 1); /* floor runs to 6 */
    assert_int_equal(set.floor, 6);
    assert_int_equal(set.count, 1);
    assert_int_equal(zkit__ackset_add(&set, 6, 9), 1); /* and on to 12 */
    assert_int_equal(set.floor, 12);
    assert_int_equal(set.count, 0);
    assert_int_equal(set.above, 0);
    /* Serialise and parse back, with holes. */
    zkit__ackset_add(&set, 14, 15);
    zkit__ackset_add(&set, 20, 30);
    size_t size = 0;
    uint8_t *data = zkit__cursor_encode(&set, 77, &size);
    assert_non_null(data);
    zkit__ackset_t back;
    zkit__ackset_init(&back);
    const char *reason;
    assert_int_equal(zkit__cursor_decode(&back, data, size, &reason), 0);
    assert_int_equal(back.floor, 12);
    assert_int_equal(back.count, 2);
    assert_int_equal(back.above, 11);
    /* Any damaged byte is refused. */
    for (size_t i = 0; i < size; i++) {
        zkit__ackset_t bad;
        zkit__ackset_init(&bad);
        data[i] ^= 0x10;
        assert_int_equal(zkit__cursor_decode(&bad, data, size, &reason), -1);
        data[i] ^= 0x10;
        zkit__ackset_fini(&bad);
    }
    free(data);
    zkit__ackset_fini(&back);
    zkit__ackset_fini(&set);
}

/* ---- options ------------------------------------------------------------------------- */

static void test_parse_options(void **state)
{
    (void) state;
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    assert_int_equal(zkit_spool_parse_fsync("never", &opts), 0);
    assert_int_equal(opts.fsync, ZKIT_SPOOL_FSYNC_NEVER);
    assert_int_equal(zkit_spool_parse_fsync("interval:250", &opts), 0);
    assert_int_equal(opts.fsync, ZKIT_SPOOL_FSYNC_INTERVAL);
    assert_int_equal(opts.fsync_interval_ms, 250);
    assert_int_equal(zkit_spool_parse_fsync("always", &opts), 0);
    assert_int_equal(opts.fsync, ZKIT_SPOOL_FSYNC_ALWAYS);
    const char *bad[] = {"",
                         "sometimes",
                         "interval:",
                         "interval:0",
                         "interval:-5",
                         "interval:5x",
                         "interval:99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        assert_int_equal(zkit_spool_parse_fsync(bad[i], &opts), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(opts.fsync, ZKIT_SPOOL_FSYNC_ALWAYS);
    }
    assert_int_equal(zkit_spool_parse_full("drop-oldest", &opts), 0);
    assert_int_equal(opts.on_full, ZKIT_SPOOL_FULL_DROP_OLDEST);
    assert_int_equal(zkit_spool_parse_full("reject", &opts), 0);
    assert_int_equal(opts.on_full, ZKIT_SPOOL_FULL_REJECT);
    assert_int_equal(zkit_spool_parse_full("block", &opts), 0);
    assert_int_equal(zkit_spool_parse_full("drop", &opts), -1);
    assert_int_equal(opts.on_full, ZKIT_SPOOL_FULL_BLOCK);

    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-opts");
    opts.segment_size = 100; /* too small */
    assert_null(zkit_spool_new(dir, &opts));
    assert_int_equal(errno, EINVAL);
    opts.segment_size = 4096;
    opts.max_bytes = 4096; /* below 2 segments */
    assert_null(zkit_spool_new(dir, &opts));
    assert_int_equal(errno, EINVAL);
    assert_string_equal(zkit_strerror(ZKIT_EFULL), "spool is full");
    assert_non_null(strstr(zkit_strerror(ZKIT_EFAILED), "reopen"));
}

/* ---- appending and reading ----------------------------------------------------------- */

static zkit_spool_opts_t s_small_opts(void)
{
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.fsync = ZKIT_SPOOL_FSYNC_NEVER; /* these tests are about logic, not disks */
    opts.segment_size = 4096;
    opts.cursor_interval_ms = 0;
    return opts;
}

/* Appends n records with payload index first_index.., sizes varying. */
static void s_append_n(zkit_spool_t *spool, uint64_t first_index, int n, uint64_t *seqs)
{
    uint8_t buf[2048];
    for (int i = 0; i < n; i++) {
        uint64_t index = first_index + (uint64_t) i;
        size_t size = tu_payload(buf, sizeof buf, index, 8 + (index * 37) % 700);
        uint64_t seq = 0;
        assert_int_equal(zkit_spool_append(spool, buf, size, &seq), 0);
        if (seqs)
            seqs[i] = seq;
    }
}

static void test_round_trip_across_rollovers(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-rt");
    zkit_spool_opts_t opts = s_small_opts();
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.segments, 0);
    assert_int_equal(st.next_seq, 1);

    uint64_t seqs[300];
    s_append_n(spool, 1, 300, seqs);
    for (int i = 0; i < 300; i++)
        assert_int_equal(seqs[i], (uint64_t) i + 1);
    /* An empty payload is a record too. */
    uint64_t seq = 0;
    assert_int_equal(zkit_spool_append(spool, NULL, 0, &seq), 0);
    assert_int_equal(seq, 301);
    zkit_spool_stats(spool, &st);
    assert_true(st.segments > 20);
    assert_int_equal(st.rolls, st.segments);
    assert_int_equal(st.newest_seq, 301);
    assert_int_equal(st.oldest_seq, 1);
    assert_int_equal(st.records, 301);
    assert_int_equal(st.unacked, 301);
    assert_int_equal(st.appends, 301);

    /* Every record back, in order, payload intact, while the spool is open
       and after a reopen. */
    for (int round = 0; round < 2; round++) {
        zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 0, 0);
        assert_non_null(reader);
        zkit_spool_record_t rec;
        for (uint64_t i = 1; i <= 300; i++) {
            assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
            assert_int_equal(rec.seq, i);
            assert_int_equal(rec.size, 8 + (i * 37) % 700);
            assert_true(tu_payload_ok(rec.data, rec.size, i));
        }
        assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
        assert_int_equal(rec.seq, 301);
        assert_int_equal(rec.size, 0);
        assert_int_equal(zkit_spool_reader_next(reader, &rec), 0);
        /* New appends show up to a reader at the end. */
        if (round == 0) {
            zkit_spool_reader_destroy(&reader);
            zkit_spool_destroy(&spool);
            assert_null(spool);
            spool = zkit_spool_new(dir, &opts);
            assert_non_null(spool);
            zkit_spool_stats(spool, &st);
            assert_int_equal(st.next_seq, 302);
            assert_int_equal(st.torn_truncations, 0);
            assert_int_equal(st.quarantined_regions, 0);
        }
        else {
            uint8_t buf[16];
            assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 16, 999, 16), &seq), 0);
            assert_int_equal(seq, 302);
            assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
            assert_int_equal(rec.seq, 302);
            assert_true(tu_payload_ok(rec.data, rec.size, 999));
            zkit_spool_reader_destroy(&reader);
        }
    }

    /* Seek to a seq and to a time. */
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 150, 0);
    zkit_spool_record_t rec;
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
    assert_int_equal(rec.seq, 150);
    uint64_t ts150 = rec.ts;
    zkit_spool_reader_seek(reader, 7);
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
    assert_int_equal(rec.seq, 7);
    assert_int_equal(zkit_spool_reader_seek_time(reader, ts150), 0);
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
    assert_true(rec.seq <= 150);
    assert_true(rec.ts >= ts150);
    zkit_spool_reader_destroy(&reader);

    /* A second read-write spool on the same directory is refused. */
    assert_null(zkit_spool_new(dir, &opts));
    assert_int_equal(errno, EBUSY);
    /* A read-only one is not, and refuses writes. */
    zkit_spool_opts_t ro = opts;
    ro.read_only = true;
    zkit_spool_t *view = zkit_spool_new(dir, &ro);
    assert_non_null(view);
    assert_int_equal(zkit_spool_append(view, "x", 1, NULL), -1);
    assert_int_equal(errno, EROFS);
    zkit_spool_verify_t report;
    assert_int_equal(zkit_spool_verify(view, &report), 0);
    assert_int_equal(report.records, 302);
    assert_int_equal(report.bad_regions, 0);
    zkit_spool_destroy(&view);

    /* Records above max_record are refused, and the spool goes on. */
    zkit_spool_destroy(&spool);
    opts.max_record = 100;
    spool = zkit_spool_new(dir, &opts);
    uint8_t big[101] = {0};
    assert_int_equal(zkit_spool_append(spool, big, 101, NULL), -1);
    assert_int_equal(errno, ZKIT_ETOOBIG);
    assert_int_equal(zkit_spool_append(spool, big, 100, &seq), 0);
    assert_int_equal(seq, 303);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

static void test_large_record_gets_own_segment(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-big");
    zkit_spool_opts_t opts = s_small_opts();
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    static uint8_t buf[60000];
    uint64_t seq;
    for (uint64_t i = 1; i <= 4; i++) {
        size_t size = tu_payload(buf, sizeof buf, i, i % 2 ? 60000 : 10);
        assert_int_equal(zkit_spool_append(spool, buf, size, &seq), 0);
    }
    uint64_t seqs[8];
    assert_int_equal(tu_read_all(spool, seqs, 8, true), 4);
    zkit_spool_destroy(&spool);
    spool = zkit_spool_new(dir, &opts);
    assert_int_equal(tu_read_all(spool, seqs, 8, true), 4);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

/* ---- the cursor ---------------------------------------------------------------------- */

static void test_cursor_out_of_order_acks_persist(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-cursor");
    zkit_spool_opts_t opts = s_small_opts();
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    s_append_n(spool, 1, 100, NULL);
    /* Ack odd seqs, backwards, then 2 and 4: the floor moves to 6. */
    for (int seq = 99; seq >= 1; seq -= 2)
        assert_int_equal(zkit_spool_ack(spool, (uint64_t) seq), 0);
    assert_int_equal(zkit_spool_ack(spool, 4), 0);
    assert_int_equal(zkit_spool_ack(spool, 2), 0);
    assert_int_equal(zkit_spool_ack(spool, 2), 0); /* twice is fine */
    assert_int_equal(zkit_spool_ack(spool, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_spool_ack(spool, 101), -1);
    assert_int_equal(errno, EINVAL);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.ack_floor, 6);
    assert_int_equal(st.unacked, 48);

    zkit_spool_destroy(&spool);

    /* A crash right after an ack: a child process opens the spool, acks 6
       and dies without closing it. With cursor_interval_ms 0 the ack was
       written before zkit_spool_ack returned. */
    pid_t pid = fork();
    if (pid == 0) {
        zkit_spool_t *child = zkit_spool_new(dir, &opts);
        _exit(child && zkit_spool_ack(child, 6) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.ack_floor, 8);
    assert_int_equal(st.unacked, 47);
    assert_false(zkit_spool_is_acked(spool, 8));
    assert_true(zkit_spool_is_acked(spool, 9));
    /* A reader from the cursor with READ_UNACKED gets exactly the even seqs
       from 8. */
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 0, ZKIT_SPOOL_READ_UNACKED);
    zkit_spool_record_t rec;
    for (uint64_t want = 8; want <= 100; want += 2) {
        assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
        assert_int_equal(rec.seq, want);
        assert_true(tu_payload_ok(rec.data, rec.size, want));
    }
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 0);
    zkit_spool_reader_destroy(&reader);

    /* Acks retire whole sealed segments; the spool keeps only the active. */
    assert_int_equal(zkit_spool_ack_upto(spool, 100), 0);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.unacked, 0);
    assert_int_equal(st.segments, 1);
    assert_true(st.retired_segments > 5);
    assert_int_equal(st.ack_floor, 101);
    zkit_spool_destroy(&spool);

    /* Seqs keep counting after everything is retired and reopened. */
    spool = zkit_spool_new(dir, &opts);
    uint64_t seq = 0;
    assert_int_equal(zkit_spool_append(spool, "z", 1, &seq), 0);
    assert_int_equal(seq, 101);
    zkit_spool_destroy(&spool);

    /* A damaged cursor is ignored: everything is redelivered, nothing lost. */
    char path[300];
    snprintf(path, sizeof path, "%s/cursor", dir);
    assert_int_equal(tu_write(path, "garbage", 7), 0);
    spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.cursor_errors, 1);
    assert_int_equal(st.unacked, 101 - st.oldest_seq + 1);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

/* ---- retention ----------------------------------------------------------------------- */

static void test_retention_by_bytes(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-retain");
    zkit_spool_opts_t opts = s_small_opts();
    opts.retain_bytes = 5 * 4096; /* keep acknowledged segments for replay up to ~5 */
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    s_append_n(spool, 1, 200, NULL);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    uint64_t before = st.segments;
    assert_true(before > 10);
    assert_int_equal(zkit_spool_ack_upto(spool, 200), 0);
    zkit_spool_stats(spool, &st);
    assert_true(st.bytes <= opts.retain_bytes);
    assert_true(st.segments >= 2);
    assert_int_equal(st.retired_segments, before - st.segments);
    /* The retained, acknowledged records can still be replayed. */
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, st.oldest_seq, 0);
    zkit_spool_record_t rec;
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
    assert_int_equal(rec.seq, st.oldest_seq);
    /* From the cursor there is nothing left. */
    zkit_spool_reader_t *fresh = zkit_spool_reader_new(spool, 0, ZKIT_SPOOL_READ_UNACKED);
    assert_int_equal(zkit_spool_reader_next(fresh, &rec), 0);
    zkit_spool_reader_destroy(&fresh);
    zkit_spool_reader_destroy(&reader);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

static void test_retention_by_age(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-age");
    uint64_t now = 1000000000000000ull;
    zkit_spool_opts_t opts = s_small_opts();
    opts.max_age_ms = 60000;
    opts.clock = tu_clock;
    opts.clock_arg = &now;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    /* Three batches 20 s apart (in the spool's clock). */
    uint64_t t0 = now;
    s_append_n(spool, 1, 50, NULL);
    now = t0 + 20 * 1000000ull;
    s_append_n(spool, 51, 50, NULL);
    now = t0 + 40 * 1000000ull;
    s_append_n(spool, 101, 50, NULL);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.expired_segments, 0);
    /* At t0 + 61 s the first batch is older than 60 s: its segments go,
       unacknowledged records and all, counted. The segment where the first
       two batches meet holds a newer record and stays. */
    now = t0 + 61 * 1000000ull;
    assert_true(zkit_spool_retain(spool) > 0);
    zkit_spool_stats(spool, &st);
    assert_true(st.expired_segments > 0);
    assert_true(st.expired_records > 0);
    assert_true(st.oldest_seq > 1 && st.oldest_seq <= 51);
    assert_int_equal(st.expired_records, st.oldest_seq - 1);
    /* What expired is gone for readers from the cursor too. */
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 0, 0);
    zkit_spool_record_t rec;
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
    assert_int_equal(rec.seq, st.oldest_seq);
    zkit_spool_reader_destroy(&reader);
    /* Far later, everything but the active segment goes, also on reopen. */
    zkit_spool_destroy(&spool);
    now += 3600 * 1000000ull;
    spool = zkit_spool_new(dir, &opts);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.segments, 1);
    assert_true(st.expired_segments > 0);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

/* ---- overflow --------------------------------------------------------------------------- */

static void test_full_reject(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-reject");
    zkit_spool_opts_t opts = s_small_opts();
    opts.max_bytes = 4 * 4096;
    opts.on_full = ZKIT_SPOOL_FULL_REJECT;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[500];
    size_t size = tu_payload(buf, sizeof buf, 1, 500);
    int accepted = 0;
    while (zkit_spool_append(spool, buf, size, NULL) == 0)
        accepted++;
    assert_int_equal(errno, ZKIT_EFULL);
    assert_true(accepted >= 20);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_true(st.bytes <= opts.max_bytes);
    assert_int_equal(st.full_rejects, 1);
    assert_int_equal(zkit_spool_append(spool, buf, size, NULL), -1);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.full_rejects, 2);
    assert_int_equal(st.dropped_segments, 0);
    /* Acknowledging the oldest records makes room again. */
    assert_int_equal(zkit_spool_ack_upto(spool, 10), 0);
    assert_int_equal(zkit_spool_append(spool, buf, size, NULL), 0);
    /* Too big to ever fit: refused as such, not as full. */
    static uint8_t huge[9000];
    assert_int_equal(zkit_spool_append(spool, huge, sizeof huge, NULL), -1);
    assert_int_equal(errno, ZKIT_ETOOBIG);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

static void test_full_drop_oldest(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-drop");
    zkit_spool_opts_t opts = s_small_opts();
    opts.max_bytes = 4 * 4096;
    opts.on_full = ZKIT_SPOOL_FULL_DROP_OLDEST;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[500];
    for (uint64_t i = 1; i <= 200; i++) {
        size_t size = tu_payload(buf, sizeof buf, i, 500);
        assert_int_equal(zkit_spool_append(spool, buf, size, NULL), 0);
    }
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_true(st.bytes <= opts.max_bytes);
    assert_true(st.dropped_segments > 0);
    assert_int_equal(st.dropped_records, st.oldest_seq - 1);
    assert_int_equal(st.newest_seq, 200);
    assert_int_equal(st.unacked, 200 - st.dropped_records);
    /* The newest records are all there, intact. */
    uint64_t seqs[200];
    int n = tu_read_all(spool, seqs, 200, true);
    assert_int_equal(n, 200 - (int) st.dropped_records);
    assert_int_equal(seqs[n - 1], 200);
    zkit_spool_destroy(&spool);

    /* With a single, huge active segment (segment_size = max_bytes / 2) the
       active one is sealed to make room. */
    tu_rmrf(dir);
    opts.segment_size = 8192;
    spool = zkit_spool_new(dir, &opts);
    for (uint64_t i = 1; i <= 100; i++) {
        size_t size = tu_payload(buf, sizeof buf, i, 500);
        assert_int_equal(zkit_spool_append(spool, buf, size, NULL), 0);
    }
    zkit_spool_stats(spool, &st);
    assert_true(st.bytes <= opts.max_bytes);
    assert_true(st.dropped_segments > 0);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

typedef struct {
    zkit_spool_t *spool;
    int rc;
    int err;
    uint64_t seq;
} s_appender_t;

static void *s_append_one(void *arg)
{
    s_appender_t *a = arg;
    uint8_t buf[500];
    size_t size = tu_payload(buf, sizeof buf, 4242, 500);
    a->rc = zkit_spool_append(a->spool, buf, size, &a->seq);
    a->err = errno;
    return NULL;
}

static void test_full_block(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-block");
    zkit_spool_opts_t opts = s_small_opts();
    opts.max_bytes = 4 * 4096;
    opts.on_full = ZKIT_SPOOL_FULL_BLOCK;
    opts.block_timeout_ms = 10000;
    uint8_t buf[500];
    size_t size = tu_payload(buf, sizeof buf, 1, 500);
    /* Fill it exactly: with REJECT, until an append is refused. */
    zkit_spool_opts_t fill = opts;
    fill.on_full = ZKIT_SPOOL_FULL_REJECT;
    zkit_spool_t *spool = zkit_spool_new(dir, &fill);
    while (zkit_spool_append(spool, buf, size, NULL) == 0)
        ;
    assert_int_equal(errno, ZKIT_EFULL);
    zkit_spool_destroy(&spool);
    spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    uint64_t last = st.newest_seq;
    /* An appender in another thread waits; an ack that retires a segment
       lets it go on. */
    s_appender_t a = {.spool = spool, .rc = -2};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_append_one, &a), 0);
    assert_int_equal(zkit__spool_wait_blocked(spool, 1, 10000), 0);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.full_blocks, 1);
    assert_int_equal(zkit_spool_ack_upto(spool, 8), 0);
    pthread_join(thread, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.seq, last + 1);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.full_timeouts, 0);
    assert_true(st.retired_segments >= 1);

    /* With nothing more acknowledged, the wait ends at the timeout with
       EFULL; every append before it went through without waiting. */
    zkit_spool_destroy(&spool);
    opts.block_timeout_ms = 50;
    spool = zkit_spool_new(dir, &opts);
    while (zkit_spool_append(spool, buf, size, NULL) == 0)
        ;
    assert_int_equal(errno, ZKIT_EFULL);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.full_blocks, 1);
    assert_int_equal(st.full_timeouts, 1);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_crc32c_hw_matches_sw),
        cmocka_unit_test(test_ackset_out_of_order),
        cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_round_trip_across_rollovers),
        cmocka_unit_test(test_large_record_gets_own_segment),
        cmocka_unit_test(test_cursor_out_of_order_acks_persist),
        cmocka_unit_test(test_retention_by_bytes),
        cmocka_unit_test(test_retention_by_age),
        cmocka_unit_test(test_full_reject),
        cmocka_unit_test(test_full_drop_oldest),
        cmocka_unit_test(test_full_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
