/*  test_spool_recovery: what the disk can do to a spool. Torn writes (the
    newest segment cut at every byte offset of its last records), bit flips
    in a record in the middle, garbage after the tail, bad segment headers,
    a full disk (RLIMIT_FSIZE in a child process, and injected ENOSPC after a
    short write), write and fdatasync errors. In every case: what was
    acknowledged is still there and intact, nothing corrupt is delivered,
    and recovery run twice gives the same result.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <czmq.h>

#include "test_spool_util.h"

#include "spool/crc32c.h"

static zkit_spool_opts_t s_opts(void)
{
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.fsync = ZKIT_SPOOL_FSYNC_NEVER; /* recovery does not depend on it; speed does */
    opts.segment_size = 64 * 1024;
    opts.cursor_interval_ms = 0;
    return opts;
}

/* Creates a spool in dir holding records with payload index i + 1 and size
   sizes[i]. Fills bounds[0..n] with the records' offsets in the (single)
   segment, bounds[n] being its size. */
static void s_build(const char *dir, const size_t *sizes, int n, uint64_t *bounds)
{
    zkit_spool_opts_t opts = s_opts();
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    static uint8_t buf[65536];
    bounds[0] = ZKIT__SEG_HDR_SIZE;
    for (int i = 0; i < n; i++) {
        size_t size = tu_payload(buf, sizeof buf, (uint64_t) i + 1, sizes[i]);
        uint64_t seq;
        assert_int_equal(zkit_spool_append(spool, buf, size, &seq), 0);
        assert_int_equal(seq, (uint64_t) i + 1);
        bounds[i + 1] = bounds[i] + zkit__rec_size(size);
    }
    zkit_spool_destroy(&spool);
}

/* Opens dir, reads every record (payloads checked), closes. Returns the
   count; seqs and stats filled. */
static int s_open_read(const char *dir, uint64_t *seqs, int cap, zkit_spool_stats_t *st)
{
    zkit_spool_opts_t opts = s_opts();
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    int n = tu_read_all(spool, seqs, cap, true);
    zkit_spool_stats(spool, st);
    zkit_spool_destroy(&spool);
    return n;
}

/* ---- torn writes ------------------------------------------------------------------- */

static void test_torn_tail_at_every_offset(void **state)
{
    (void) state;
    char dir[256], seg[300], quarantine[300];
    tu_tmpdir(dir, sizeof dir, "spool-torn");
    const size_t sizes[] = {40, 200, 13, 700, 333, 1000};
    const int n = 6;
    uint64_t bounds[7];
    s_build(dir, sizes, n, bounds);
    tu_seg_path(seg, sizeof seg, dir, 1);
    snprintf(quarantine, sizeof quarantine, "%s/quarantine", dir);
    size_t pristine_size;
    uint8_t *pristine = tu_read(seg, &pristine_size);
    assert_non_null(pristine);
    assert_int_equal(pristine_size, bounds[n]);

    /* Cut the segment at every byte offset of its last three records. Each
       cut is logged (ZKIT-SPOOL-TORN); thousands of lines are muted here. */
    zsys_set_logstream(NULL);
    int cuts = 0;
    for (uint64_t cut = bounds[n - 3]; cut < bounds[n]; cut++, cuts++) {
        assert_int_equal(tu_write(seg, pristine, (size_t) cut), 0);
        int complete = 0;
        while (complete < n && bounds[complete + 1] <= cut)
            complete++;
        bool torn = cut != bounds[complete];

        uint64_t seqs[8];
        zkit_spool_stats_t st;
        for (int round = 0; round < 2; round++) {
            int got = s_open_read(dir, seqs, 8, &st);
            assert_int_equal(got, complete);
            for (int i = 0; i < got; i++)
                assert_int_equal(seqs[i], (uint64_t) i + 1);
            assert_int_equal(st.next_seq, (uint64_t) complete + 1);
            /* The first recovery cuts the torn record; the second finds
               nothing to do and the same state. */
            assert_int_equal(st.torn_truncations, round == 0 && torn ? 1 : 0);
            assert_int_equal(st.torn_bytes, round == 0 && torn ? cut - bounds[complete] : 0);
            assert_int_equal(st.quarantined_regions, 0);
            assert_int_equal(tu_file_size(seg), (long) bounds[complete]);
            assert_int_equal(tu_file_size(quarantine), -1);
        }
        /* And appends go on from there. */
        if (cut % 97 == 0) {
            zkit_spool_opts_t opts = s_opts();
            zkit_spool_t *spool = zkit_spool_new(dir, &opts);
            uint64_t seq;
            uint8_t buf[64];
            assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 64, 77, 64), &seq), 0);
            assert_int_equal(seq, (uint64_t) complete + 1);
            zkit_spool_destroy(&spool);
            assert_int_equal(s_open_read(dir, seqs, 8, &st), complete + 1);
        }
    }
    zsys_set_logstream(stdout);
    assert_true(cuts > 2000);

    /* A read-only open sees the same records but leaves the file alone. */
    uint64_t cut = bounds[n] - 5;
    assert_int_equal(tu_write(seg, pristine, (size_t) cut), 0);
    zkit_spool_opts_t ro = s_opts();
    ro.read_only = true;
    zkit_spool_t *view = zkit_spool_new(dir, &ro);
    assert_non_null(view);
    uint64_t seqs[8];
    assert_int_equal(tu_read_all(view, seqs, 8, true), n - 1);
    zkit_spool_destroy(&view);
    assert_int_equal(tu_file_size(seg), (long) cut);
    free(pristine);
    tu_rmrf(dir);
}

static void test_garbage_after_tail_is_truncated(void **state)
{
    (void) state;
    char dir[256], seg[300];
    tu_tmpdir(dir, sizeof dir, "spool-garbage");
    const size_t sizes[] = {100, 250, 17};
    uint64_t bounds[4];
    s_build(dir, sizes, 3, bounds);
    tu_seg_path(seg, sizeof seg, dir, 1);
    size_t size;
    uint8_t *pristine = tu_read(seg, &size);
    static uint8_t garbage[8192];
    uint64_t rnd = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof garbage; i++) {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        garbage[i] = (uint8_t) rnd;
    }
    /* Random bytes of many lengths, zeros (a file extended by a crash), and
       a replay of the last record (its seq is not above the previous). */
    struct {
        const uint8_t *data;
        size_t size;
    } tails[] = {
        {garbage, 1},
        {garbage, 7},
        {garbage, 8},
        {garbage, 31},
        {garbage, 32},
        {garbage, 33},
        {garbage, 500},
        {garbage, sizeof garbage},
        {NULL, 4096},
        {NULL, 40},
        {pristine + bounds[2], (size_t) (bounds[3] - bounds[2])},
    };
    static uint8_t zeros[4096];
    for (size_t k = 0; k < sizeof tails / sizeof *tails; k++) {
        const uint8_t *data = tails[k].data ? tails[k].data : zeros;
        uint8_t *file = malloc(size + tails[k].size);
        memcpy(file, pristine, size);
        memcpy(file + size, data, tails[k].size);
        assert_int_equal(tu_write(seg, file, size + tails[k].size), 0);
        free(file);
        uint64_t seqs[8];
        zkit_spool_stats_t st;
        assert_int_equal(s_open_read(dir, seqs, 8, &st), 3);
        assert_int_equal(st.torn_truncations, 1);
        assert_int_equal(st.torn_bytes, tails[k].size);
        assert_int_equal(tu_file_size(seg), (long) size);
        assert_int_equal(s_open_read(dir, seqs, 8, &st), 3);
        assert_int_equal(st.torn_truncations, 0);
    }
    free(pristine);
    tu_rmrf(dir);
}

/* ---- bad records in the middle ------------------------------------------------------- */

static void test_bit_flip_in_middle_record_is_quarantined(void **state)
{
    (void) state;
    char dir[256], seg[300], quarantine[300], cursor[300];
    tu_tmpdir(dir, sizeof dir, "spool-flip");
    const size_t sizes[] = {100, 200, 300, 200, 100};
    uint64_t bounds[6];
    s_build(dir, sizes, 5, bounds);
    tu_seg_path(seg, sizeof seg, dir, 1);
    snprintf(quarantine, sizeof quarantine, "%s/quarantine", dir);
    snprintf(cursor, sizeof cursor, "%s/cursor", dir);
    size_t size;
    uint8_t *pristine = tu_read(seg, &size);
    int flips = 0;
    zsys_set_logstream(NULL); /* one ZKIT-SPOOL-QUARANTINE line per flip */
    /* Every byte of record 3 (header, payload and padding), one bit each. */
    for (uint64_t at = bounds[2]; at < bounds[3]; at++, flips++) {
        pristine[at] ^= (uint8_t) (1u << (at % 8));
        assert_int_equal(tu_write(seg, pristine, size), 0);
        pristine[at] ^= (uint8_t) (1u << (at % 8));
        unlink(quarantine);
        unlink(cursor);
        for (int round = 0; round < 2; round++) {
            uint64_t seqs[8];
            zkit_spool_stats_t st;
            int got = s_open_read(dir, seqs, 8, &st);
            assert_int_equal(got, 4);
            assert_int_equal(seqs[0], 1);
            assert_int_equal(seqs[1], 2);
            assert_int_equal(seqs[2], 4);
            assert_int_equal(seqs[3], 5);
            assert_int_equal(st.quarantined_regions, round == 0 ? 1 : 0);
            assert_int_equal(st.quarantined_records, round == 0 ? 1 : 0);
            assert_int_equal(st.torn_truncations, 0);
            assert_int_equal(st.next_seq, 6);
            assert_int_equal(st.unacked, 4); /* seq 3 is gone, not pending */
            assert_int_equal(tu_count_lines(quarantine), 1);
            assert_int_equal(tu_file_size(seg), (long) size);
        }
    }
    zsys_set_logstream(stdout);
    assert_true(flips > 300);
    free(pristine);
    tu_rmrf(dir);
}

static void test_bad_record_in_sealed_segment_found_by_reader(void **state)
{
    (void) state;
    char dir[256], seg[300], quarantine[300];
    tu_tmpdir(dir, sizeof dir, "spool-sealed");
    zkit_spool_opts_t opts = s_opts();
    opts.segment_size = 4096;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[600];
    for (uint64_t i = 1; i <= 30; i++)
        assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 600, i, 600), NULL), 0);
    zkit_spool_destroy(&spool);
    /* Damage the payload of seq 2 (segment 1, second record). */
    tu_seg_path(seg, sizeof seg, dir, 1);
    snprintf(quarantine, sizeof quarantine, "%s/quarantine", dir);
    size_t size;
    uint8_t *data = tu_read(seg, &size);
    data[ZKIT__SEG_HDR_SIZE + zkit__rec_size(600) + 100] ^= 0x40;
    assert_int_equal(tu_write(seg, data, size), 0);
    free(data);

    for (int round = 0; round < 2; round++) {
        spool = zkit_spool_new(dir, &opts);
        zkit_spool_stats_t st;
        zkit_spool_stats(spool, &st);
        /* Recovery only scans the newest segment: not found yet. */
        assert_int_equal(st.quarantined_regions, 0);
        uint64_t seqs[40];
        assert_int_equal(tu_read_all(spool, seqs, 40, true), 29);
        assert_int_equal(seqs[0], 1);
        assert_int_equal(seqs[1], 3);
        zkit_spool_stats(spool, &st);
        assert_int_equal(st.quarantined_regions, round == 0 ? 1 : 0);
        assert_true(zkit_spool_is_acked(spool, 2));
        assert_int_equal(st.unacked, 29);
        zkit_spool_verify_t report;
        assert_int_equal(zkit_spool_verify(spool, &report), 1);
        assert_int_equal(report.bad_regions, 1);
        assert_int_equal(report.bad_records, 1);
        assert_int_equal(report.records, 29);
        assert_int_equal(tu_count_lines(quarantine), 1);
        zkit_spool_destroy(&spool);
    }
    tu_rmrf(dir);
}

static void test_bad_segment_header_is_set_aside(void **state)
{
    (void) state;
    char dir[256], seg[300], bad[310], quarantine[300];
    tu_tmpdir(dir, sizeof dir, "spool-header");
    zkit_spool_opts_t opts = s_opts();
    opts.segment_size = 4096;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[600];
    for (uint64_t i = 1; i <= 30; i++)
        assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 600, i, 600), NULL), 0);
    zkit_spool_destroy(&spool);
    /* Segment 2 holds seqs 7..12 (six 632-byte records per 4 KiB). */
    uint64_t second = 1 + (4096 - ZKIT__SEG_HDR_SIZE) / zkit__rec_size(600);
    tu_seg_path(seg, sizeof seg, dir, second);
    snprintf(bad, sizeof bad, "%s.bad", seg);
    snprintf(quarantine, sizeof quarantine, "%s/quarantine", dir);
    size_t size;
    uint8_t *data = tu_read(seg, &size);
    assert_non_null(data);
    data[20] ^= 1; /* inside first_seq: the header CRC catches it */
    assert_int_equal(tu_write(seg, data, size), 0);

    for (int round = 0; round < 2; round++) {
        uint64_t seqs[40];
        zkit_spool_stats_t st;
        int got = s_open_read(dir, seqs, 40, &st);
        assert_int_equal(got, 30 - 6);
        for (int i = 0; i < got; i++)
            assert_true(seqs[i] < second || seqs[i] >= second + 6);
        assert_int_equal(st.bad_segments, round == 0 ? 1 : 0);
        assert_int_equal(st.unacked, 24);
        assert_int_equal(st.next_seq, 31);
        assert_int_equal(tu_file_size(seg), -1);
        assert_int_equal(tu_file_size(bad), (long) size);
        assert_int_equal(tu_count_lines(quarantine), 1);
    }

    /* A header from a newer format (CRC valid) is refused, not quarantined. */
    tu_seg_path(seg, sizeof seg, dir, 1);
    free(data);
    data = tu_read(seg, &size);
    data[8] = 2;
    zkit__put_le32(data + 60, zkit__crc32c(0, data, 60));
    assert_int_equal(tu_write(seg, data, size), 0);
    spool = zkit_spool_new(dir, &opts);
    assert_null(spool);
    assert_int_equal(errno, ZKIT_EFORMAT);
    free(data);
    tu_rmrf(dir);
}

static void test_bad_newest_segment_header(void **state)
{
    (void) state;
    char dir[256], seg[300];
    tu_tmpdir(dir, sizeof dir, "spool-newest");
    zkit_spool_opts_t opts = s_opts();
    opts.segment_size = 4096;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[600];
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 600, i, 600), NULL), 0);
    zkit_spool_destroy(&spool);
    uint64_t second = 1 + (4096 - ZKIT__SEG_HDR_SIZE) / zkit__rec_size(600);
    tu_seg_path(seg, sizeof seg, dir, second);
    size_t size;
    uint8_t *data = tu_read(seg, &size);
    memset(data, 0, 8); /* magic gone */
    assert_int_equal(tu_write(seg, data, size), 0);
    free(data);
    /* Its records are not delivered, and their seqs are never reused. */
    spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.next_seq, 11);
    uint64_t seq;
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 600, 11, 600), &seq), 0);
    assert_int_equal(seq, 11);
    uint64_t seqs[20];
    assert_int_equal(tu_read_all(spool, seqs, 20, true), (int) second);
    assert_int_equal(seqs[second - 1], 11);
    zkit_spool_destroy(&spool);
    tu_rmrf(dir);
}

/* ---- a full disk --------------------------------------------------------------------- */

/* Child-side check: exits with the line number on failure. */
#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child check failed at line %d: %s (errno %d)\n", __LINE__, #cond,     \
                    errno);                                                                        \
            _exit(100);                                                                            \
        }                                                                                          \
    } while (0)

static void s_disk_full_child(const char *dir)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old;
    CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit small = {.rlim_cur = 10000, .rlim_max = old.rlim_max};
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);

    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT; /* fsync always */
    opts.segment_size = 64 * 1024;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    CHILD_CHECK(spool);
    uint8_t buf[700];
    uint64_t acked = 0, seq = 0;
    int rc;
    while ((rc = zkit_spool_append(spool, buf, tu_payload(buf, 700, acked + 1, 700), &seq)) == 0)
        acked = seq;
    /* A clear error; the spool did not fail; the file is as before. */
    CHILD_CHECK(errno == EFBIG);
    CHILD_CHECK(acked >= 10);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    CHILD_CHECK(!st.failed);
    CHILD_CHECK(st.write_errors == 1);
    CHILD_CHECK(st.newest_seq == acked);
    CHILD_CHECK(zkit_spool_append(spool, buf, 700, NULL) == -1 && errno == EFBIG);
    /* Space comes back: appends work again, with the next seq. */
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHILD_CHECK(zkit_spool_append(spool, buf, tu_payload(buf, 700, acked + 1, 700), &seq) == 0);
    CHILD_CHECK(seq == acked + 1);
    zkit_spool_destroy(&spool);
    /* Everything acknowledged is there, intact; nothing was torn. */
    spool = zkit_spool_new(dir, &opts);
    CHILD_CHECK(spool);
    uint64_t seqs[64];
    CHILD_CHECK(tu_read_all(spool, seqs, 64, true) == (int) acked + 1);
    zkit_spool_stats(spool, &st);
    CHILD_CHECK(st.torn_truncations == 0 && st.quarantined_regions == 0);
    zkit_spool_destroy(&spool);
    _exit(0);
}

static void test_disk_full_rlimit_fsize(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-fsize");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        s_disk_full_child(dir);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tu_rmrf(dir);
}

static void test_disk_full_injected_enospc(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-enospc");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[300];
    for (uint64_t i = 1; i <= 5; i++)
        assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 300, i, 300), NULL), 0);
    char seg[300];
    tu_seg_path(seg, sizeof seg, dir, 1);
    long before = tu_file_size(seg);
    /* The disk fills up in the middle of the next record: a short write,
       then ENOSPC. */
    tu_fault_disk_space(&fault, 100, ENOSPC);
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 300, 6, 300), NULL), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(tu_file_size(seg), before); /* the partial record is gone */
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_false(st.failed);
    assert_int_equal(st.write_errors, 1);
    assert_int_equal(st.newest_seq, 5);
    /* Space returns. */
    tu_fault_disk_space(&fault, -1, ENOSPC);
    uint64_t seq;
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 300, 6, 300), &seq), 0);
    assert_int_equal(seq, 6);
    zkit_spool_destroy(&spool);
    spool = zkit_spool_new(dir, &opts);
    uint64_t seqs[8];
    assert_int_equal(tu_read_all(spool, seqs, 8, true), 6);
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.torn_truncations, 0);
    assert_int_equal(st.quarantined_regions, 0);

    /* A full disk when a new segment is due: the roll fails cleanly too. */
    zkit_spool_destroy(&spool);
    opts.segment_size = 1024;
    spool = zkit_spool_new(dir, &opts);
    tu_fault_disk_space(&fault, 0, ENOSPC);
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 300, 7, 300), NULL), -1);
    assert_int_equal(errno, ENOSPC);
    tu_fault_disk_space(&fault, -1, ENOSPC);
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 300, 7, 300), &seq), 0);
    assert_int_equal(seq, 7);
    assert_int_equal(tu_read_all(spool, seqs, 8, true), 7);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

/* ---- failed fdatasync and writes ------------------------------------------------------- */

static void test_failed_fdatasync_fails_the_spool(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-fsyncfail");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint8_t buf[200];
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 200, i, 200), NULL), 0);
    tu_fault_set(&fault, &fault.fail_fdatasync, 1);
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 200, 11, 200), NULL), -1);
    assert_int_equal(errno, EIO);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_true(st.failed);
    assert_int_equal(st.failed_errno, EIO);
    assert_int_equal(st.fsync_errors, 1);
    assert_int_equal(st.synced_seq, 10);
    /* Refused from now on, even though fdatasync would work again: the spool
       never retries an fsync that failed. */
    int syncs = tu_fault_get(&fault, &fault.fdatasyncs);
    assert_int_equal(zkit_spool_append(spool, buf, 200, NULL), -1);
    assert_int_equal(errno, ZKIT_EFAILED);
    assert_int_equal(zkit_spool_sync(spool), -1);
    assert_int_equal(errno, ZKIT_EFAILED);
    assert_int_equal(zkit_spool_wait_synced(spool, 11, 1000), -1);
    assert_int_equal(errno, ZKIT_EFAILED);
    assert_int_equal(tu_fault_get(&fault, &fault.fdatasyncs), syncs);
    /* Readers still deliver what was acknowledged; acks still work. */
    uint64_t seqs[16];
    assert_int_equal(tu_read_all(spool, seqs, 16, true), 10);
    assert_int_equal(zkit_spool_ack(spool, 1), 0);
    zkit_spool_destroy(&spool);

    /* Reopened: recovery takes what is on disk, appends work. Seq 11 was
       never acknowledged; it may or may not have survived. */
    spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats(spool, &st);
    assert_false(st.failed);
    int got = tu_read_all(spool, seqs, 16, true);
    assert_true(got == 10 || got == 11);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seqs[i], (uint64_t) i + 1);
    uint64_t seq;
    assert_int_equal(zkit_spool_append(spool, buf, tu_payload(buf, 200, 12, 200), &seq), 0);
    assert_int_equal(seq, (uint64_t) got + 1);
    assert_true(zkit_spool_is_acked(spool, 1));
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

static void test_write_error_fails_the_spool(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-eio");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_int_equal(zkit_spool_append(spool, "one", 3, NULL), 0);
    tu_fault_disk_space(&fault, 0, EIO);
    assert_int_equal(zkit_spool_append(spool, "two", 3, NULL), -1);
    assert_int_equal(errno, EIO);
    tu_fault_disk_space(&fault, -1, ENOSPC);
    assert_int_equal(zkit_spool_append(spool, "three", 5, NULL), -1);
    assert_int_equal(errno, ZKIT_EFAILED);
    zkit_spool_destroy(&spool);
    spool = zkit_spool_new(dir, &opts);
    assert_int_equal(zkit_spool_append(spool, "two", 3, NULL), 0);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_tail_at_every_offset),
        cmocka_unit_test(test_garbage_after_tail_is_truncated),
        cmocka_unit_test(test_bit_flip_in_middle_record_is_quarantined),
        cmocka_unit_test(test_bad_record_in_sealed_segment_found_by_reader),
        cmocka_unit_test(test_bad_segment_header_is_set_aside),
        cmocka_unit_test(test_bad_newest_segment_header),
        cmocka_unit_test(test_disk_full_rlimit_fsize),
        cmocka_unit_test(test_disk_full_injected_enospc),
        cmocka_unit_test(test_failed_fdatasync_fails_the_spool),
        cmocka_unit_test(test_write_error_fails_the_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
