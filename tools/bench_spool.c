/*  bench_spool.c: `zkit bench spool`, the spool beside the raw disk loops
    (and redis with appendfsync always, when installed), in one run.

    Rows, each a pair run alternating kit and anchor (docs/performance.md):
    - fsync always, 1 producer: zkit_spool_append, an fdatasync per record,
      against a raw pwrite + fdatasync loop of the same on-disk record size;
    - fsync always, P producers (threads): group commit shares fdatasyncs,
      against the same raw loop, and against redis LPUSH with appendfsync
      always from P connections;
    - the device, fsync always, P producers: PUT -> CONFIRMED over tcp
      loopback through zkit_spool_device (group commit by bursts);
    - fsync interval:MS and never, 1 and P producers, against a raw pwrite
      loop (no sync);
    - replay: a spool reader over records on disk (warm), against a plain
      sequential read of the same bytes; and replay's rate against the live
      append rate (fsync never, 1 producer).
    Appends per second and the append's latency (its acknowledgement to the
    producer: p50, p99 of each round, median over the rounds) are quoted
    beside the anchor's, with the ratio kit / anchor in msg/s. An fdatasync
    per message is slow, so such sides do fewer messages per round than the
    others; rates are per message, so the ratio is fair.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE /* nftw */
#include <czmq.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_spool.h"
#include "zkit_cli.h"

#define S_SUITE        ZKIT__BSPOOL_NAME
#define S_DEFAULT_MSGS 50000
#define S_QUICK_MSGS   5000
#define S_SIZE         128
#define S_PRODUCERS    50
#define S_INTERVAL_MS  100

typedef struct {
    const char *workload; /* "fsync always" ... */
    int producers;
    const char *anchor;
    uint64_t kit_n, anchor_n;
    zkit__bench_fn_t kit_fn, anchor_fn;
    void *kit_ctx, *anchor_ctx;
    zkit__bspool_lat_t *kit_lat, *anchor_lat; /* NULL: not measured */
    double target;                            /* kit/anchor msg/s; 0 = none */
    /* results */
    bool done;
    zkit__bench_result_t r;
    double kit_p50, kit_p99, anchor_p50, anchor_p99;
} s_row_t;

typedef struct {
    zkit__bench_opts_t opts;
    size_t size;
    int producers;
    uint32_t interval_ms;
    const char *base; /* where the temporary directory goes */
    char dir[4096];
    const char *redis_server;
    char redis_note[160];
    s_row_t rows[12];
    int nrows;
    double replay_vs_live;
} s_suite_t;

/* ---- setup ------------------------------------------------------------------- */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

static const char *s_sub(const s_suite_t *s, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", s->dir, name);
    return buf;
}

static void s_add(s_suite_t *s, s_row_t row)
{
    s->rows[s->nrows++] = row;
}

static int s_run_row(s_row_t *row, int rounds)
{
    if (row->kit_lat)
        row->kit_lat->calls = 0;
    if (row->anchor_lat)
        row->anchor_lat->calls = 0;
    if (zkit__bspool_pair(row->kit_fn, row->kit_ctx, row->kit_n, row->anchor_fn, row->anchor_ctx,
                          row->anchor_n, rounds, &row->r))
        return -1;
    row->kit_p50 = row->kit_p99 = row->anchor_p50 = row->anchor_p99 = NAN;
    if (row->kit_lat)
        zkit__bspool_lat_summary(row->kit_lat, &row->kit_p50, &row->kit_p99);
    if (row->anchor_lat)
        zkit__bspool_lat_summary(row->anchor_lat, &row->anchor_p50, &row->anchor_p99);
    row->done = true;
    return 0;
}

/* ---- output ------------------------------------------------------------------- */

static double s_rate(const zkit__bench_side_t *side)
{
    return 1e9 / side->wall_ns;
}

static void s_print_table(const s_suite_t *s)
{
    char b[12][32];
    printf("bench spool: %s records (%zu B on disk), %d rounds, median round quoted\n",
           zkit__bench_fmt_bytes(b[0], sizeof b[0], s->size), zkit__bspool_record_size(s->size),
           s->opts.rounds);
    printf("dir %s; producers are threads of this process; latency = an append's (or PUT's)\n"
           "acknowledgement to its producer, p50/p99 per round, median over rounds\n\n",
           s->dir);
    static const zkit__bench_col_t cols[] = {{"workload", 30}, {"prod", 4},   {"kit k/s", 8},
                                             {"p50 us", 7},    {"p99 us", 7}, {"anchor", 22},
                                             {"k/s", 8},       {"p50 us", 7}, {"p99 us", 7},
                                             {"ratio", 6},     {"target", 6}, {"met", 3}};
    zkit__bench_table_header(stdout, cols, 12);
    for (int i = 0; i < s->nrows; i++) {
        const s_row_t *row = &s->rows[i];
        if (!row->done)
            continue;
        char prod[16];
        snprintf(prod, sizeof prod, "%d", row->producers);
        const char *cells[12] = {
            row->workload,
            prod,
            zkit__bench_fmt(b[0], s_rate(&row->r.kit) / 1000, 1),
            zkit__bench_fmt(b[1], row->kit_p50 / 1000, 1),
            zkit__bench_fmt(b[2], row->kit_p99 / 1000, 1),
            row->anchor,
            zkit__bench_fmt(b[3], s_rate(&row->r.anchor) / 1000, 1),
            zkit__bench_fmt(b[4], row->anchor_p50 / 1000, 1),
            zkit__bench_fmt(b[5], row->anchor_p99 / 1000, 1),
            zkit__bench_fmt(b[6], row->r.faster, 2),
            row->target > 0 ? (snprintf(b[7], 32, ">=%.1f", row->target), b[7]) : "-",
            row->target > 0 ? (row->r.faster >= row->target ? "yes" : "no") : "-"};
        zkit__bench_table_row(stdout, cols, 12, cells);
    }
    printf("\nratio = kit msg/s / anchor msg/s. replay vs live (fsync never, 1 producer): %s\n",
           zkit__bench_fmt(b[8], s->replay_vs_live, 2));
    if (!s->redis_server)
        printf("redis     skipped: %s\n", s->redis_note);
    printf("Targets (docs/performance.md) are informational; this machine's numbers are noisy.\n");
}

static void s_json_side(zkit__bench_json_t *j, const char *key, const zkit__bench_side_t *side,
                        double p50, double p99)
{
    zkit__bench_json_object(j, key);
    zkit__bench_json_num(j, "msg_s", s_rate(side));
    zkit__bench_json_num(j, "wall_ns", side->wall_ns);
    zkit__bench_json_num(j, "cpu_ns", side->cpu_ns);
    zkit__bench_json_num(j, "wall_min_ns", side->wall_min_ns);
    zkit__bench_json_num(j, "wall_max_ns", side->wall_max_ns);
    if (isnan(p50))
        zkit__bench_json_null(j, "p50_ns");
    else
        zkit__bench_json_num(j, "p50_ns", p50);
    if (isnan(p99))
        zkit__bench_json_null(j, "p99_ns");
    else
        zkit__bench_json_num(j, "p99_ns", p99);
    zkit__bench_json_end(j, '}');
}

static void s_print_json(const s_suite_t *s)
{
    zkit__bench_json_t j;
    zkit__bench_json_init(&j, stdout);
    zkit__bench_json_object(&j, NULL);
    zkit__bench_json_str(&j, "suite", S_SUITE);
    zkit__bench_json_bool(&j, "quick", s->opts.quick);
    zkit__bench_json_uint(&j, "rounds", (uint64_t) s->opts.rounds);
    zkit__bench_json_uint(&j, "record_bytes", s->size);
    zkit__bench_json_uint(&j, "disk_record_bytes", zkit__bspool_record_size(s->size));
    zkit__bench_json_uint(&j, "producers", (uint64_t) s->producers);
    zkit__bench_json_str(&j, "dir", s->dir);
    zkit__bench_json_array(&j, "rows");
    for (int i = 0; i < s->nrows; i++) {
        const s_row_t *row = &s->rows[i];
        if (!row->done)
            continue;
        zkit__bench_json_object(&j, NULL);
        zkit__bench_json_str(&j, "workload", row->workload);
        zkit__bench_json_uint(&j, "producers", (uint64_t) row->producers);
        zkit__bench_json_uint(&j, "kit_messages", row->kit_n);
        zkit__bench_json_str(&j, "anchor", row->anchor);
        zkit__bench_json_uint(&j, "anchor_messages", row->anchor_n);
        s_json_side(&j, "kit", &row->r.kit, row->kit_p50, row->kit_p99);
        s_json_side(&j, "anchor_figures", &row->r.anchor, row->anchor_p50, row->anchor_p99);
        zkit__bench_json_num(&j, "ratio", row->r.faster);
        if (row->target > 0) {
            zkit__bench_json_object(&j, "target");
            zkit__bench_json_num(&j, "ratio", row->target);
            zkit__bench_json_bool(&j, "met", row->r.faster >= row->target);
            zkit__bench_json_end(&j, '}');
        }
        else
            zkit__bench_json_null(&j, "target");
        zkit__bench_json_end(&j, '}');
    }
    zkit__bench_json_end(&j, ']');
    zkit__bench_json_object(&j, "redis");
    zkit__bench_json_bool(&j, "measured", s->redis_server != NULL);
    if (!s->redis_server)
        zkit__bench_json_str(&j, "note", s->redis_note);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_num(&j, "replay_vs_live", s->replay_vs_live);
    zkit__bench_json_end(&j, '}');
    fputc('\n', stdout);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: zkit bench spool [OPTIONS]\n"
            "\n"
            "Appends per second and the append's acknowledgement latency (p50, p99) of\n"
            "the spool for fsync always (1 producer, and P producers sharing fdatasyncs\n"
            "by group commit), always through the device (PUT -> CONFIRMED, tcp), interval\n"
            "and never, each beside a raw pwrite + fdatasync loop or a raw pwrite loop of\n"
            "the same record size, and beside redis with appendfsync always (P clients)\n"
            "when a redis-server is on PATH; then replay from disk beside a plain read,\n"
            "and replay's rate against the live append rate. Ratios are kit / anchor.\n"
            "\n"
            "options:\n"
            "  --size BYTES      record payload (default %d)\n"
            "  --producers N     the many-producer rows, 2-64 (default %d)\n"
            "  --interval MS     the interval policy's sync period (default %d)\n"
            "  --dir DIR         where to make the temporary spools: the disk to measure\n"
            "                    (default $TMPDIR or /tmp)\n"
            "%s"
            "\n"
            "--messages N is the fast sides' count per round; an fdatasync per message does\n"
            "N/100, group commit N/5. Defaults: %d rounds x %d (--quick: %d x %d).\n",
            S_SIZE, S_PRODUCERS, S_INTERVAL_MS, ZKIT__BENCH_COMMON_HELP, ZKIT__BENCH_DEFAULT_ROUNDS,
            S_DEFAULT_MSGS, ZKIT__BENCH_QUICK_ROUNDS, S_QUICK_MSGS);
}

static int s_parse(s_suite_t *s, int argc, char **argv)
{
    for (int i = 1; i < argc;) {
        const char *value;
        uint64_t v;
        int rc = zkit__bench_parse_common(S_SUITE, argc, argv, &i, &s->opts);
        if (rc < 0)
            return ZKIT_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            s_usage(stdout);
            return ZKIT_EXIT_OK;
        }
        if ((value = zkit__bench_option_value(argc, argv, &i, "--size"))) {
            if (zkit__bench_parse_u64(S_SUITE, "--size", value, 0, 1 << 20, &v))
                return ZKIT_EXIT_USAGE;
            s->size = (size_t) v;
        }
        else if ((value = zkit__bench_option_value(argc, argv, &i, "--producers"))) {
            if (zkit__bench_parse_u64(S_SUITE, "--producers", value, 2, 64, &v))
                return ZKIT_EXIT_USAGE;
            s->producers = (int) v;
        }
        else if ((value = zkit__bench_option_value(argc, argv, &i, "--interval"))) {
            if (zkit__bench_parse_u64(S_SUITE, "--interval", value, 1, 3600000, &v))
                return ZKIT_EXIT_USAGE;
            s->interval_ms = (uint32_t) v;
        }
        else if ((value = zkit__bench_option_value(argc, argv, &i, "--dir"))) {
            if (!*value) {
                fprintf(stderr, "zkit bench %s: --dir needs a directory\n", S_SUITE);
                return ZKIT_EXIT_USAGE;
            }
            s->base = value;
        }
        else {
            fprintf(stderr, "zkit bench %s: unknown option '%s'\n", S_SUITE, argv[i]);
            s_usage(stderr);
            return ZKIT_EXIT_USAGE;
        }
    }
    return -1;
}

/* ---- the suite ------------------------------------------------------------------- */

int zkit__bench_spool(int argc, char **argv)
{
    s_suite_t *s = calloc(1, sizeof *s);
    if (!s)
        return ZKIT_EXIT_FAILURE;
    s->size = S_SIZE;
    s->producers = S_PRODUCERS;
    s->interval_ms = S_INTERVAL_MS;
    int rc = s_parse(s, argc, argv);
    if (rc != -1) {
        free(s);
        return rc;
    }
    zkit__bench_opts_finish(&s->opts, S_DEFAULT_MSGS, S_QUICK_MSGS);
    const char *base = s->base ? s->base : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(s->dir, sizeof s->dir, "%s/zkit-bench-spool-XXXXXX", base);
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "zkit bench %s: cannot make a directory in %s: %s\n", S_SUITE, base,
                strerror(errno));
        free(s);
        return ZKIT_EXIT_FAILURE;
    }
    zsys_init();
    zsys_set_logstream(stderr);
    uint64_t n_fast = s->opts.messages;
    uint64_t n_group = n_fast / 5 > (uint64_t) s->producers ? n_fast / 5 : (uint64_t) s->producers;
    uint64_t n_sync = n_fast / 100 > 20 ? n_fast / 100 : 20;
    int p = s->producers;
    char interval[32], d[8][4200];
    snprintf(interval, sizeof interval, "interval:%u", (unsigned) s->interval_ms);

    zkit__bspool_raw_t raw_sync, raw_append;
    zkit__bspool_kit_t kits[6];
    zkit__bspool_device_t device;
    zkit__bspool_replay_t replay;
    zkit__bspool_redis_t redis;
    memset(kits, 0, sizeof kits);
    memset(&device, 0, sizeof device);
    memset(&replay, 0, sizeof replay);
    memset(&redis, 0, sizeof redis);
    redis.pid = -1;
    raw_sync.fd = raw_append.fd = -1;
    size_t record = zkit__bspool_record_size(s->size);
    const char *policies[6] = {"always", "always", interval, interval, "never", "never"};
    int producers[6] = {1, p, 1, p, 1, p};
    rc = ZKIT_EXIT_FAILURE;
    if (zkit__bspool_raw_open(&raw_sync, s->dir, true, record, n_group) ||
        zkit__bspool_raw_open(&raw_append, s->dir, false, record, n_fast))
        goto done;
    for (int k = 0; k < 6; k++) {
        char name[32];
        snprintf(name, sizeof name, "kit%d", k);
        if (zkit__bspool_kit_open(&kits[k], s_sub(s, name, d[k], sizeof d[k]), policies[k],
                                  producers[k], s->size, n_fast))
            goto done;
    }
    if (zkit__bspool_device_open(&device, s_sub(s, "device", d[6], sizeof d[6]), p, s->size,
                                 n_group) ||
        zkit__bspool_replay_open(&replay, s_sub(s, "replay", d[7], sizeof d[7]), s->size, n_fast))
        goto done;
    s->redis_server = zkit__bspool_redis_server();
    if (!s->redis_server)
        snprintf(s->redis_note, sizeof s->redis_note, "no redis-server on PATH");
    else if (zkit__bspool_redis_open(&redis, s->redis_server, s->dir, p, s->size, n_group)) {
        snprintf(s->redis_note, sizeof s->redis_note, "%s did not start with appendfsync always",
                 s->redis_server);
        s->redis_server = NULL;
    }

    s_add(s, (s_row_t){.workload = "fsync always",
                       .producers = 1,
                       .anchor = "write+fdatasync",
                       .kit_n = n_sync,
                       .anchor_n = n_sync,
                       .kit_fn = zkit__bspool_kit_run,
                       .anchor_fn = zkit__bspool_raw_run,
                       .kit_ctx = &kits[0],
                       .anchor_ctx = &raw_sync,
                       .kit_lat = &kits[0].lat,
                       .anchor_lat = &raw_sync.lat,
                       .target = 0.9});
    s_add(s, (s_row_t){.workload = "fsync always, group commit",
                       .producers = p,
                       .anchor = "write+fdatasync",
                       .kit_n = n_group,
                       .anchor_n = n_sync,
                       .kit_fn = zkit__bspool_kit_run,
                       .anchor_fn = zkit__bspool_raw_run,
                       .kit_ctx = &kits[1],
                       .anchor_ctx = &raw_sync,
                       .kit_lat = &kits[1].lat,
                       .anchor_lat = &raw_sync.lat});
    if (s->redis_server)
        s_add(s, (s_row_t){.workload = "fsync always, group commit",
                           .producers = p,
                           .anchor = "redis appendfsync always",
                           .kit_n = n_group,
                           .anchor_n = n_group,
                           .kit_fn = zkit__bspool_kit_run,
                           .anchor_fn = zkit__bspool_redis_run,
                           .kit_ctx = &kits[1],
                           .anchor_ctx = &redis,
                           .kit_lat = &kits[1].lat,
                           .anchor_lat = &redis.lat,
                           .target = 2.0});
    s_add(s, (s_row_t){.workload = "device PUT->CONFIRMED, always",
                       .producers = p,
                       .anchor = "write+fdatasync",
                       .kit_n = n_group,
                       .anchor_n = n_sync,
                       .kit_fn = zkit__bspool_device_run,
                       .anchor_fn = zkit__bspool_raw_run,
                       .kit_ctx = &device,
                       .anchor_ctx = &raw_sync,
                       .kit_lat = &device.lat,
                       .anchor_lat = &raw_sync.lat});
    static const char *const names[4] = {"fsync interval", "fsync interval", "fsync never",
                                         "fsync never"};
    for (int k = 2; k < 6; k++)
        s_add(s, (s_row_t){.workload = names[k - 2],
                           .producers = producers[k],
                           .anchor = "write (no sync)",
                           .kit_n = n_fast,
                           .anchor_n = n_fast,
                           .kit_fn = zkit__bspool_kit_run,
                           .anchor_fn = zkit__bspool_raw_run,
                           .kit_ctx = &kits[k],
                           .anchor_ctx = &raw_append,
                           .kit_lat = &kits[k].lat,
                           .anchor_lat = &raw_append.lat,
                           .target = producers[k] == 1 ? 0.8 : 0});
    s_add(s, (s_row_t){.workload = "replay (reader, warm)",
                       .producers = 1,
                       .anchor = "read (same bytes)",
                       .kit_n = n_fast,
                       .anchor_n = n_fast,
                       .kit_fn = zkit__bspool_replay_run,
                       .anchor_fn = zkit__bspool_read_run,
                       .kit_ctx = &replay,
                       .anchor_ctx = &replay});
    for (int i = 0; i < s->nrows; i++)
        if (s_run_row(&s->rows[i], s->opts.rounds)) {
            fprintf(stderr, "zkit bench %s: the '%s' row failed\n", S_SUITE, s->rows[i].workload);
            goto done;
        }
    /* Replay against live: the never x1 row's kit rate.                     */
    for (int i = 0; i < s->nrows; i++)
        if (!strcmp(s->rows[i].workload, "fsync never") && s->rows[i].producers == 1)
            s->replay_vs_live = s_rate(&s->rows[s->nrows - 1].r.kit) / s_rate(&s->rows[i].r.kit);
    if (s->opts.json)
        s_print_json(s);
    else
        s_print_table(s);
    rc = ZKIT_EXIT_OK;
done:
    zkit__bspool_redis_close(&redis);
    zkit__bspool_replay_close(&replay);
    zkit__bspool_device_close(&device);
    for (int k = 0; k < 6; k++)
        zkit__bspool_kit_close(&kits[k]);
    zkit__bspool_raw_close(&raw_sync);
    zkit__bspool_raw_close(&raw_append);
    nftw(s->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(s);
    return rc;
}
