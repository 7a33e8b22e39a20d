/*  fuzz_spool_recovery: libFuzzer target for spool recovery.

    The input becomes the only segment file (0000000000000001.zseg) of a
    fresh spool directory. Then, in order:
      1. a read-only open, every record read, verify: the analysis without
         repairs;
      2. a read-write open (recovery: truncation, quarantine, setting aside a
         bad header), every record read, verify, close;
      3. the same again.
    None of it may crash, leak or read out of bounds (ASan and UBSan watch).
    Recovery must be idempotent: passes 2 and 3 deliver the same records
    (seq, size, CRC-32C of the payload), give the same next seq and the
    same verify verdict; and the read-only analysis of pass 1 delivers what
    pass 2 delivers. An open that fails must fail the same way each time.
    Any mismatch aborts, which libFuzzer reports as a crash.

    Seeds: tests/fuzz/corpus/spool_recovery/ (valid, torn, corrupt, bad
    header, newer version segments).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zkit_spool.h"

#include "spool/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_MAX_RECORDS 4096

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_spool_recovery: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    bool opened;
    int open_errno;
    uint64_t next_seq;
    int verdict; /* of zkit_spool_verify */
    size_t count;
    struct {
        uint64_t seq;
        size_t size;
        uint32_t crc;
    } rec[S_MAX_RECORDS];
} s_result_t;

static char s_base[256];

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

static void s_rmrf(const char *path)
{
    nftw(path, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_pass(const char *dir, bool read_only, s_result_t *out)
{
    memset(out, 0, sizeof *out);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.fsync = ZKIT_SPOOL_FSYNC_NEVER; /* nothing here needs to reach a disk */
    opts.read_only = read_only;
    opts.cursor_interval_ms = 0;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    if (!spool) {
        out->open_errno = errno;
        return;
    }
    out->opened = true;
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 1, 0);
    S_CHECK(reader);
    zkit_spool_record_t r;
    int rc;
    uint64_t prev = 0;
    while ((rc = zkit_spool_reader_next(reader, &r)) == 1) {
        S_CHECK(r.seq > prev); /* seqs only grow */
        prev = r.seq;
        if (out->count < S_MAX_RECORDS) {
            out->rec[out->count].seq = r.seq;
            out->rec[out->count].size = r.size;
            out->rec[out->count].crc = zkit__crc32c(0, r.data, r.size);
        }
        out->count++;
    }
    S_CHECK(rc == 0); /* a local file never gives EIO here */
    zkit_spool_reader_destroy(&reader);
    zkit_spool_verify_t report;
    out->verdict = zkit_spool_verify(spool, &report);
    S_CHECK(out->verdict == 0 || out->verdict == 1);
    S_CHECK(report.records == out->count);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    out->next_seq = st.next_seq;
    S_CHECK(st.next_seq > prev);
    zkit_spool_destroy(&spool);
}

static void s_same_records(const s_result_t *a, const s_result_t *b)
{
    S_CHECK(a->opened == b->opened);
    if (!a->opened) {
        S_CHECK(a->open_errno == b->open_errno);
        return;
    }
    S_CHECK(a->count == b->count);
    size_t n = a->count < S_MAX_RECORDS ? a->count : S_MAX_RECORDS;
    for (size_t i = 0; i < n; i++) {
        S_CHECK(a->rec[i].seq == b->rec[i].seq);
        S_CHECK(a->rec[i].size == b->rec[i].size);
        S_CHECK(a->rec[i].crc == b->rec[i].crc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static s_result_t first, second, analysis;
    if (!s_base[0]) {
        zsys_init();
        zsys_set_logstream(NULL); /* recovery logs every repair: keep quiet */
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(s_base, sizeof s_base, "%s/zkit-fuzz-spool-XXXXXX", tmp);
        S_CHECK(mkdtemp(s_base));
    }
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/spool", s_base);
    s_rmrf(dir);
    S_CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/0000000000000001.zseg", dir);
    FILE *f = fopen(path, "wb");
    S_CHECK(f);
    S_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    S_CHECK(fclose(f) == 0);

    s_pass(dir, true, &analysis);
    s_pass(dir, false, &first);
    s_pass(dir, false, &second);
    s_same_records(&first, &second);
    if (first.opened) {
        S_CHECK(first.next_seq == second.next_seq);
        S_CHECK(first.verdict == second.verdict);
    }
    s_same_records(&analysis, &first);
    s_rmrf(dir);
    return 0;
}
