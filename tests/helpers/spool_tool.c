/*  spool_tool: drives a spool from the process-level fault tests
    (tests/integration/test_spool_faults.py).

    spool_tool append DIR N [options]
        Appends N records (0: until killed) and prints "SEQ CRC LEN" on stdout
        (CRC-32C of the payload, hex) for each one as soon as its append
        returned, so every printed seq was acknowledged. On an append error it
        prints "error: TEXT" on stderr and exits 1.
          --fsync always|never|interval:MS   (default always)
          --segment-size BYTES               (default 65536)
          --max-bytes BYTES --on-full block|reject|drop-oldest
          --threads T                        appenders (default 1)
          --max-size BYTES                   largest payload (default 2000)
          --seed S                           payload sizes (default: pid)
        Payloads describe themselves: bytes 0-7 a run id, 8-15 a counter,
        16-19 the length, then byte k = (counter * 131 + k * 7) mod 256.
    spool_tool dump DIR [--read-only] [--payload-from SEQ]
        Opens the spool (recovering it unless --read-only) and prints
        "SEQ LEN CRC" for every deliverable record, plus " HEX" of the payload
        for seqs >= SEQ. Then "stats torn=.. torn_bytes=.. quarantined=..
        bad_segments=.. next_seq=.." on stderr.
    spool_tool verify DIR
        Recovers and verifies every record; prints the report. Exit 0 when
        clean, 1 when bad regions were found, 2 on errors.
    spool_tool ack DIR SEQ...
        Acknowledges the seqs and writes the cursor.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <czmq.h>

#include "zkit_spool.h"

#include "spool/crc32c.h"

typedef struct {
    zkit_spool_t *spool;
    uint64_t count; /* 0: forever */
    size_t max_size;
    uint64_t seed;
    uint64_t run;
    pthread_mutex_t *lock;
    uint64_t *counter;
    int rc;
} s_appender_t;

static uint64_t s_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static size_t s_fill(uint8_t *buf, uint64_t run, uint64_t counter, size_t size)
{
    for (size_t k = 20; k < size; k++)
        buf[k] = (uint8_t) (counter * 131 + k * 7);
    memcpy(buf, &run, 8);
    memcpy(buf + 8, &counter, 8);
    uint32_t len = (uint32_t) size;
    memcpy(buf + 16, &len, 4);
    return size;
}

static void *s_append_loop(void *arg)
{
    s_appender_t *a = arg;
    uint8_t *buf = malloc(a->max_size);
    uint64_t state = a->seed | 1;
    for (uint64_t n = 0; buf && (a->count == 0 || n < a->count); n++) {
        /* Mostly small records, now and then a big one (a multi-page write
           a kill can tear). */
        uint64_t r = s_rand(&state);
        size_t span = a->max_size - 20 < 300 ? a->max_size - 20 : 300;
        size_t size = 20 + (size_t) (r % span);
        if (r % 50 == 0)
            size = 20 + (size_t) ((r >> 16) % (a->max_size - 20));
        pthread_mutex_lock(a->lock);
        uint64_t counter = ++*a->counter;
        pthread_mutex_unlock(a->lock);
        s_fill(buf, a->run, counter, size);
        uint64_t seq;
        if (zkit_spool_append(a->spool, buf, size, &seq)) {
            fprintf(stderr, "error: %s\n", zkit_strerror(errno));
            a->rc = 1;
            break;
        }
        char line[64];
        int len = snprintf(line, sizeof line, "%" PRIu64 " %08x %zu\n", seq,
                           zkit__crc32c(0, buf, size), size);
        /* One write per line: lines from several threads never interleave. */
        if (write(STDOUT_FILENO, line, (size_t) len) != len) {
            a->rc = 1;
            break;
        }
    }
    free(buf);
    return NULL;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: spool_tool append DIR N [--fsync P] [--segment-size B] [--threads T]\n"
                    "                  [--max-size B] [--max-bytes B] [--on-full P] [--seed S]\n"
                    "       spool_tool dump DIR [--read-only] [--payload-from SEQ]\n"
                    "       spool_tool verify DIR\n"
                    "       spool_tool ack DIR SEQ...\n");
    return 2;
}

static int s_cmd_append(int argc, char **argv)
{
    if (argc < 4)
        return s_usage();
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.segment_size = 65536;
    uint64_t count = strtoull(argv[3], NULL, 10);
    int threads = 1;
    size_t max_size = 2000;
    uint64_t seed = (uint64_t) getpid() * 2654435761u;
    for (int i = 4; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return s_usage();
        i++;
        if (strcmp(opt, "--fsync") == 0) {
            if (zkit_spool_parse_fsync(val, &opts))
                return s_usage();
        }
        else if (strcmp(opt, "--on-full") == 0) {
            if (zkit_spool_parse_full(val, &opts))
                return s_usage();
        }
        else if (strcmp(opt, "--segment-size") == 0)
            opts.segment_size = strtoull(val, NULL, 10);
        else if (strcmp(opt, "--max-bytes") == 0)
            opts.max_bytes = strtoull(val, NULL, 10);
        else if (strcmp(opt, "--threads") == 0)
            threads = atoi(val);
        else if (strcmp(opt, "--max-size") == 0)
            max_size = strtoull(val, NULL, 10);
        else if (strcmp(opt, "--seed") == 0)
            seed = strtoull(val, NULL, 10);
        else
            return s_usage();
    }
    if (threads < 1 || threads > 64 || max_size < 21 || max_size > (1u << 30))
        return s_usage();
    zkit_spool_t *spool = zkit_spool_new(argv[2], &opts);
    if (!spool) {
        fprintf(stderr, "error: cannot open %s: %s\n", argv[2], zkit_strerror(errno));
        return 1;
    }
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    uint64_t counter = 0;
    s_appender_t appenders[64];
    pthread_t ids[64];
    uint64_t run = seed ^ ((uint64_t) getpid() << 32);
    for (int t = 0; t < threads; t++) {
        appenders[t] = (s_appender_t){
            .spool = spool,
            .count = count ? (count + (uint64_t) threads - 1) / (uint64_t) threads : 0,
            .max_size = max_size,
            .seed = seed + (uint64_t) t * 7919,
            .run = run,
            .lock = &lock,
            .counter = &counter};
        pthread_create(&ids[t], NULL, s_append_loop, &appenders[t]);
    }
    int rc = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        rc |= appenders[t].rc;
    }
    zkit_spool_destroy(&spool);
    return rc;
}

static void s_print_stats(zkit_spool_t *spool)
{
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    fprintf(stderr,
            "stats torn=%" PRIu64 " torn_bytes=%" PRIu64 " quarantined=%" PRIu64
            " quarantined_records=%" PRIu64 " bad_segments=%" PRIu64 " segments=%" PRIu64
            " next_seq=%" PRIu64 " unacked=%" PRIu64 "\n",
            st.torn_truncations, st.torn_bytes, st.quarantined_regions, st.quarantined_records,
            st.bad_segments, st.segments, st.next_seq, st.unacked);
}

static int s_cmd_dump(int argc, char **argv)
{
    if (argc < 3)
        return s_usage();
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    uint64_t payload_from = UINT64_MAX;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--read-only") == 0)
            opts.read_only = true;
        else if (strcmp(argv[i], "--payload-from") == 0 && i + 1 < argc)
            payload_from = strtoull(argv[++i], NULL, 10);
        else
            return s_usage();
    }
    zkit_spool_t *spool = zkit_spool_new(argv[2], &opts);
    if (!spool) {
        fprintf(stderr, "error: cannot open %s: %s\n", argv[2], zkit_strerror(errno));
        return 2;
    }
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 1, 0);
    zkit_spool_record_t rec;
    int rc;
    while ((rc = zkit_spool_reader_next(reader, &rec)) == 1) {
        printf("%" PRIu64 " %zu %08x", rec.seq, rec.size, zkit__crc32c(0, rec.data, rec.size));
        if (rec.seq >= payload_from) {
            putchar(' ');
            for (size_t i = 0; i < rec.size; i++)
                printf("%02x", ((const uint8_t *) rec.data)[i]);
        }
        putchar('\n');
    }
    if (rc < 0)
        fprintf(stderr, "error: read: %s\n", zkit_strerror(errno));
    zkit_spool_reader_destroy(&reader);
    fflush(stdout);
    s_print_stats(spool);
    zkit_spool_destroy(&spool);
    return rc < 0 ? 2 : 0;
}

static int s_cmd_verify(int argc, char **argv)
{
    if (argc != 3)
        return s_usage();
    zkit_spool_t *spool = zkit_spool_new(argv[2], NULL);
    if (!spool) {
        fprintf(stderr, "error: cannot open %s: %s\n", argv[2], zkit_strerror(errno));
        return 2;
    }
    zkit_spool_verify_t report;
    int rc = zkit_spool_verify(spool, &report);
    printf("segments=%" PRIu64 " records=%" PRIu64 " bytes=%" PRIu64 " bad_regions=%" PRIu64
           " bad_records=%" PRIu64 "\n",
           report.segments, report.records, report.bytes, report.bad_regions, report.bad_records);
    s_print_stats(spool);
    zkit_spool_destroy(&spool);
    return rc < 0 ? 2 : rc;
}

static int s_cmd_ack(int argc, char **argv)
{
    if (argc < 4)
        return s_usage();
    zkit_spool_t *spool = zkit_spool_new(argv[2], NULL);
    if (!spool) {
        fprintf(stderr, "error: cannot open %s: %s\n", argv[2], zkit_strerror(errno));
        return 2;
    }
    int rc = 0;
    for (int i = 3; i < argc && rc == 0; i++)
        if (zkit_spool_ack(spool, strtoull(argv[i], NULL, 10))) {
            fprintf(stderr, "error: ack %s: %s\n", argv[i], zkit_strerror(errno));
            rc = 1;
        }
    if (rc == 0 && zkit_spool_checkpoint(spool)) {
        fprintf(stderr, "error: checkpoint: %s\n", zkit_strerror(errno));
        rc = 1;
    }
    zkit_spool_destroy(&spool);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return s_usage();
    zsys_set_logstream(stderr); /* stdout carries the data */
    if (strcmp(argv[1], "append") == 0)
        return s_cmd_append(argc, argv);
    if (strcmp(argv[1], "dump") == 0)
        return s_cmd_dump(argc, argv);
    if (strcmp(argv[1], "verify") == 0)
        return s_cmd_verify(argc, argv);
    if (strcmp(argv[1], "ack") == 0)
        return s_cmd_ack(argc, argv);
    return s_usage();
}
