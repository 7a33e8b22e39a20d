/*  cmd_spool.c: `zkit spool`, the store-and-forward device, and the
    dispatch to its tools (inspect, verify, replay in spool_inspect.c and
    spool_replay.c).

    Running the device: starts a zkit_spool_device_t with the options given,
    prints the bound endpoints and the state of the recovered spool, waits
    for SIGINT or SIGTERM, then prints its counters.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "zkit.h"
#include "device_common.h"
#include "spool_cli.h"
#include "zkit_cli.h"

#define S_CMD "spool"

static const char s_usage_text[] =
    "usage: zkit spool [run] --in EP --out EP --dir DIR [OPTIONS]\n"
    "       zkit spool inspect DIR [--format text|json]\n"
    "       zkit spool verify DIR [--format text|json]\n"
    "       zkit spool replay DIR --to EP [--from SEQ | --since TIME] [OPTIONS]\n"
    "\n"
    "Store-and-forward device. Producers hand envelopes to --in; each is\n"
    "appended to the spool in DIR and, for a reliable producer, CONFIRMED once it\n"
    "is stored as --fsync promises (group commit: one fdatasync per burst).\n"
    "Consumers connect to --out, say READY with a credit and get DELIVER\n"
    "messages; a record leaves the spool only when a consumer ACKs it. Records\n"
    "held by a consumer that dies go to another. After a restart (even after\n"
    "kill -9) everything not acknowledged is delivered again.\n"
    "Protocol: docs/spool-protocol.md. Producer and consumer in the CLI:\n"
    "'zkit cat --push --reliable' and 'zkit cat --pull --reliable'.\n"
    "\n"
    "subcommands:\n"
    "  run       the device (the default when the first argument is an option)\n"
    "  inspect   segments, records, cursor, sizes, oldest and newest record,\n"
    "            unacknowledged count (read-only; works on a live spool)\n"
    "  verify    reads every record and checks its CRCs; exit 1 when a bad\n"
    "            region is found, each reported with its segment file, offset\n"
    "            and the seqs it lost (read-only)\n"
    "  replay    sends stored envelopes to an endpoint (PUSH), from a seq or a\n"
    "            time; read-only, acknowledged records still on disk included\n"
    "'zkit spool SUBCOMMAND --help' describes each tool.\n"
    "\n"
    "device options:\n"
    "  -i, --in EP            endpoint(s) producers connect to (ROUTER): PUT with\n"
    "                         confirmation, or a bare envelope (fire-and-forget)\n"
    "      --in-push EP       endpoint(s) for plain PUSH producers (PULL socket,\n"
    "                         fire-and-forget)\n"
    "  -o, --out EP           endpoint(s) consumers connect to (ROUTER)\n"
    "  -d, --dir DIR          the spool directory (created if missing)\n"
    "      --fsync POLICY     always (default: confirm after fdatasync), interval:MS\n"
    "                         (confirm after the write, sync every MS ms) or never\n"
    "      --max-bytes N      limit on the segment files' total size (suffix k, m,\n"
    "                         g); 0 = none (default)\n"
    "      --full POLICY      when max-bytes is reached: block (default: hold the\n"
    "                         PUT until acks free room, up to --block-timeout),\n"
    "                         reject (REJECTED FULL at once) or drop-oldest (delete\n"
    "                         the oldest segment, acknowledged or not; counted)\n"
    "      --block-timeout MS longest a PUT is held under block (default 10000)\n"
    "      --segment-size N   segment rollover size (default 64m, or max-bytes/4)\n"
    "      --max-record N     largest envelope stored (default 16m)\n"
    "      --retain-bytes N   keep acknowledged segments for replay up to N bytes\n"
    "      --max-age MS       delete segments older than MS, acknowledged or not\n"
    "      --heartbeat MS     heartbeat with consumers, both ways (default 1000)\n"
    "      --liveness N       missed heartbeats before a consumer is presumed dead\n"
    "                         (default 3)\n"
    "      --max-attempts N   deliveries before a record is dead-lettered (default\n"
    "                         0 = no limit)\n"
    "      --timeout MS       an unacknowledged delivery fails after MS and goes\n"
    "                         to another consumer (default 0 = off)\n"
    "      --dead-letter DIR  a second spool for records given up on (max attempts,\n"
    "                         ttl); without it they are logged and retired\n"
    "      --prefetch N       records held in memory for delivery (default 10000)\n"
    "      --dedup-window N   ids of the newest N records remembered, so a resent PUT\n"
    "                         is confirmed without a second copy (default 100000)\n"
    "      --burst N          producer messages per group commit (default 1024)\n"
    "      --name NAME        name in log lines (default spool)\n"
    "  -v, --verbose          log consumers arriving and leaving\n"
    "  -h, --help             this text\n"
    "\n";

/* After zkit__device_ops_usage.                                             */
static const char s_usage_tail[] =
    "\n"
    "The device prints 'zkit spool: bound ENDPOINT' on stderr for --in, --out and\n"
    "--in-push, in that order, 'zkit spool: control ENDPOINT' with --control, then\n"
    "one line with the recovered state. On SIGINT or SIGTERM it stops and prints\n"
    "its counters. A PUT that cannot be stored (disk full, spool full, I/O error)\n"
    "is answered REJECTED with the reason; the device keeps running.\n"
    "The control endpoint's PAUSE stops deliveries to consumers (producers are\n"
    "still stored and confirmed; the lag_records gauge grows); RESUME delivers the\n"
    "backlog. --curve-allow secures --in, --in-push and --out (CURVE servers).\n"
    "\n"
    "Exit status: 0 stopped by a signal (tools: done); 1 could not start or a\n"
    "tool failed (verify: bad records found); 2 usage.\n"
    "\n"
    "example:\n"
    "  zkit spool --in tcp://*:5570 --out tcp://*:5571 --dir /var/lib/zkit/spool\n"
    "  seq 1000 | zkit cat --push --reliable --connect tcp://127.0.0.1:5570 --file -\n"
    "  zkit cat --pull --reliable --connect tcp://127.0.0.1:5571 --count 1000\n";

enum {
    S_OPT_IN_PUSH = 256,
    S_OPT_FSYNC,
    S_OPT_MAX_BYTES,
    S_OPT_FULL,
    S_OPT_BLOCK_TIMEOUT,
    S_OPT_SEGMENT_SIZE,
    S_OPT_MAX_RECORD,
    S_OPT_RETAIN_BYTES,
    S_OPT_MAX_AGE,
    S_OPT_HEARTBEAT,
    S_OPT_LIVENESS,
    S_OPT_MAX_ATTEMPTS,
    S_OPT_TIMEOUT,
    S_OPT_DEAD_LETTER,
    S_OPT_PREFETCH,
    S_OPT_DEDUP,
    S_OPT_BURST,
    S_OPT_NAME,
};

static const struct option s_long_options[] = {
    {"in", required_argument, NULL, 'i'},
    {"in-push", required_argument, NULL, S_OPT_IN_PUSH},
    {"out", required_argument, NULL, 'o'},
    {"dir", required_argument, NULL, 'd'},
    {"fsync", required_argument, NULL, S_OPT_FSYNC},
    {"max-bytes", required_argument, NULL, S_OPT_MAX_BYTES},
    {"full", required_argument, NULL, S_OPT_FULL},
    {"block-timeout", required_argument, NULL, S_OPT_BLOCK_TIMEOUT},
    {"segment-size", required_argument, NULL, S_OPT_SEGMENT_SIZE},
    {"max-record", required_argument, NULL, S_OPT_MAX_RECORD},
    {"retain-bytes", required_argument, NULL, S_OPT_RETAIN_BYTES},
    {"max-age", required_argument, NULL, S_OPT_MAX_AGE},
    {"heartbeat", required_argument, NULL, S_OPT_HEARTBEAT},
    {"liveness", required_argument, NULL, S_OPT_LIVENESS},
    {"max-attempts", required_argument, NULL, S_OPT_MAX_ATTEMPTS},
    {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
    {"dead-letter", required_argument, NULL, S_OPT_DEAD_LETTER},
    {"prefetch", required_argument, NULL, S_OPT_PREFETCH},
    {"dedup-window", required_argument, NULL, S_OPT_DEDUP},
    {"burst", required_argument, NULL, S_OPT_BURST},
    {"name", required_argument, NULL, S_OPT_NAME},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int s_number(const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
    return zkit__device_number_option(S_CMD, name, min, max, out);
}

static int s_u32(const char *name, uint64_t min, uint64_t max, uint32_t *out)
{
    return zkit__device_u32_option(S_CMD, name, min, max, out);
}

static int s_bytes(const char *name, uint64_t max, uint64_t *out)
{
    if (zkit__spool_parse_bytes(optarg, max, out) == -1)
        return zkit__device_usage_error(S_CMD, "--%s wants a byte count (suffix k, m, g), not '%s'",
                                        name, optarg);
    return -1;
}

/*  Returns -1 when the device should run, else the exit code.             */
static int s_parse(zkit_spool_device_opts_t *o, int argc, char **argv)
{
    bool segment_given = false;
    uint64_t v;
    opterr = 0;
    optind = 1;
    int c, rc = -1;
    while (rc == -1 && (c = getopt_long(argc, argv, ":i:o:d:vh", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'i': o->in = optarg; break;
        case S_OPT_IN_PUSH: o->in_push = optarg; break;
        case 'o': o->out = optarg; break;
        case 'd': o->dir = optarg; break;
        case S_OPT_FSYNC:
            if (zkit_spool_parse_fsync(optarg, &o->spool))
                return zkit__device_usage_error(
                    S_CMD, "--fsync is always, never or interval:MS (1-3600000), not '%s'", optarg);
            break;
        case S_OPT_FULL:
            if (zkit_spool_parse_full(optarg, &o->spool))
                return zkit__device_usage_error(
                    S_CMD, "--full is block, reject or drop-oldest, not '%s'", optarg);
            break;
        case S_OPT_MAX_BYTES: rc = s_bytes("max-bytes", UINT64_MAX, &o->spool.max_bytes); break;
        case S_OPT_SEGMENT_SIZE:
            rc = s_bytes("segment-size", (uint64_t) 1 << 40, &o->spool.segment_size);
            segment_given = true;
            break;
        case S_OPT_MAX_RECORD:
            if ((rc = s_bytes("max-record", 1u << 30, &v)) == -1)
                o->spool.max_record = (uint32_t) v;
            break;
        case S_OPT_RETAIN_BYTES:
            rc = s_bytes("retain-bytes", UINT64_MAX, &o->spool.retain_bytes);
            break;
        case S_OPT_BLOCK_TIMEOUT:
            if ((rc = s_number("block-timeout", 0, INT32_MAX, &v)) == -1)
                o->spool.block_timeout_ms = (int) v;
            break;
        case S_OPT_MAX_AGE:
            rc = s_number("max-age", 0, UINT64_MAX / 1000, &o->spool.max_age_ms);
            break;
        case S_OPT_HEARTBEAT: rc = s_u32("heartbeat", 1, 3600000, &o->heartbeat_ms); break;
        case S_OPT_LIVENESS: rc = s_u32("liveness", 1, 100, &o->liveness); break;
        case S_OPT_MAX_ATTEMPTS: rc = s_u32("max-attempts", 0, 1000000, &o->max_attempts); break;
        case S_OPT_TIMEOUT: rc = s_u32("timeout", 0, UINT32_MAX, &o->attempt_timeout_ms); break;
        case S_OPT_DEAD_LETTER: o->dead_letter_dir = optarg; break;
        case S_OPT_PREFETCH: rc = s_u32("prefetch", 1, 1000000, &o->prefetch); break;
        case S_OPT_DEDUP: rc = s_u32("dedup-window", 0, 100000000, &o->dedup_window); break;
        case S_OPT_BURST: rc = s_u32("burst", 1, 65536, &o->burst); break;
        case S_OPT_NAME: o->name = optarg; break;
        case 'v': o->verbose = true; break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: rc = zkit__device_other_option(S_CMD, c, argv, &o->ops); break;
        }
    }
    if (rc != -1)
        return rc;
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->in || !*o->in)
        return zkit__device_usage_error(S_CMD, "--in is required");
    if (!o->out || !*o->out)
        return zkit__device_usage_error(S_CMD, "--out is required");
    if (!o->dir || !*o->dir)
        return zkit__device_usage_error(S_CMD, "--dir is required");
    if (o->in_push && !*o->in_push)
        return zkit__device_usage_error(S_CMD, "empty endpoint for --in-push");
    if (o->dead_letter_dir && !*o->dead_letter_dir)
        return zkit__device_usage_error(S_CMD, "empty directory for --dead-letter");
    zkit_spool_opts_t *s = &o->spool;
    /* A small max-bytes gets segments small enough for the rule the spool
       enforces (two segments fit), unless the size was given.             */
    if (s->max_bytes && !segment_given && s->segment_size > s->max_bytes / 4)
        s->segment_size = s->max_bytes / 4 < 4096 ? 4096 : s->max_bytes / 4;
    if (s->segment_size < 512)
        return zkit__device_usage_error(S_CMD, "--segment-size must be at least 512 bytes");
    if (s->max_bytes && s->max_bytes / 2 < s->segment_size)
        return zkit__device_usage_error(S_CMD,
                                        "--max-bytes must hold at least two segments (%" PRIu64
                                        " bytes with this segment size)",
                                        2 * s->segment_size);
    return -1;
}

static void s_print_stats(const zkit_spool_device_stats_t *s)
{
    fprintf(stderr,
            "zkit spool: puts=%" PRIu64 " pushes=%" PRIu64 " stored=%" PRIu64 " confirmed=%" PRIu64
            " duplicates=%" PRIu64 " group_commits=%" PRIu64 " blocked=%" PRIu64
            " push_dropped=%" PRIu64 " unroutable=%" PRIu64 " stored_bytes=%" PRIu64 "\n",
            s->puts, s->pushes, s->stored, s->confirmed, s->duplicates, s->group_commits,
            s->blocked, s->push_dropped, s->unroutable, s->stored_bytes);
    fprintf(stderr, "zkit spool: rejected:");
    for (int i = 0; i < ZKIT_SPOOL_DEVICE_REJECT_REASONS_; i++)
        fprintf(stderr, " %s=%" PRIu64, zkit_spool_device_reject_name(i), s->rejected[i]);
    fputc('\n', stderr);
    fprintf(stderr,
            "zkit spool: delivered=%" PRIu64 " acked=%" PRIu64 " duplicate_acks=%" PRIu64
            " nacks=%" PRIu64 " requeued=%" PRIu64 " duplicate_records=%" PRIu64
            " dead_letters=%" PRIu64 " dead_letter_errors=%" PRIu64 " delivered_bytes=%" PRIu64
            "\n",
            s->delivered, s->acked, s->duplicate_acks, s->nacks, s->requeued, s->duplicate_records,
            s->dead_letters, s->dead_letter_errors, s->delivered_bytes);
    fprintf(stderr,
            "zkit spool: consumers_ready=%" PRIu64 " consumers_expired=%" PRIu64
            " consumers_gone=%" PRIu64 " unknown_consumer=%" PRIu64 " consumers=%" PRIu64
            " queued=%" PRIu64 " in_flight=%" PRIu64 " held=%" PRIu64 "\n",
            s->consumers_ready, s->consumers_expired, s->consumers_gone, s->unknown_consumer,
            s->consumers, s->queued, s->in_flight, s->held);
    static const char *const keys[] = {"frames", "command", "field", "envelope"};
    fprintf(stderr, "zkit spool: dropped producer messages:");
    for (int i = 0; i < ZKIT_SPOOL_DEVICE_BAD_REASONS_; i++)
        fprintf(stderr, " %s=%" PRIu64, keys[i], s->bad_in[i]);
    fprintf(stderr, "\nzkit spool: dropped consumer messages:");
    for (int i = 0; i < ZKIT_SPOOL_DEVICE_BAD_REASONS_; i++)
        fprintf(stderr, " %s=%" PRIu64, keys[i], s->bad_out[i]);
    const zkit_spool_stats_t *p = &s->spool;
    fprintf(stderr,
            "\nzkit spool: spool segments=%" PRIu64 " bytes=%" PRIu64 " unacked=%" PRIu64
            " next_seq=%" PRIu64 " fsyncs=%" PRIu64 " write_errors=%" PRIu64 " failed=%d\n",
            p->segments, p->bytes, p->unacked, p->next_seq, p->fsyncs, p->write_errors,
            p->failed ? 1 : 0);
}

static int s_run(int argc, char **argv)
{
    zkit_spool_device_opts_t opts = ZKIT_SPOOL_DEVICE_OPTS_DEFAULT;
    opts.spool.block_timeout_ms = 10000;
    int rc = s_parse(&opts, argc, argv);
    if (rc != -1)
        return rc;
    zkit__device_catch_signals();
    /* Past RLIMIT_FSIZE a write fails with EFBIG instead of killing us: the
       producer then gets REJECTED NOSPACE and the device keeps running.   */
    signal(SIGXFSZ, SIG_IGN);
    zsys_set_logstream(stderr);
    zkit_spool_device_t *device = zkit_spool_device_new(&opts);
    if (!device) {
        fprintf(stderr, "zkit spool: cannot start: %s\n", zkit_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    fprintf(stderr, "zkit spool: bound %s\n", zkit_spool_device_in(device));
    fprintf(stderr, "zkit spool: bound %s\n", zkit_spool_device_out(device));
    if (opts.in_push)
        fprintf(stderr, "zkit spool: bound %s\n", zkit_spool_device_in_push(device));
    if (zkit_spool_device_control(device))
        fprintf(stderr, "zkit spool: control %s\n", zkit_spool_device_control(device));
    zkit_spool_device_stats_t stats;
    if (zkit_spool_device_stats(device, &stats) == 0) {
        const zkit_spool_stats_t *p = &stats.spool;
        fprintf(stderr,
                "zkit spool: spool %s: unacked=%" PRIu64 " next_seq=%" PRIu64 " segments=%" PRIu64
                " torn_bytes=%" PRIu64 " quarantined_records=%" PRIu64 "\n",
                opts.dir, p->unacked, p->next_seq, p->segments, p->torn_bytes,
                p->quarantined_records);
    }
    fflush(stderr);
    zkit__device_wait_for_stop();
    bool have_stats = zkit_spool_device_stats(device, &stats) == 0;
    zkit_spool_device_destroy(&device);
    if (have_stats)
        s_print_stats(&stats);
    return ZKIT_EXIT_OK;
}

int zkit_cmd_spool(int argc, char **argv)
{
    if (argc >= 2) {
        const char *sub = argv[1];
        if (!strcmp(sub, "inspect"))
            return zkit__spool_inspect(argc - 1, argv + 1);
        if (!strcmp(sub, "verify"))
            return zkit__spool_verify(argc - 1, argv + 1);
        if (!strcmp(sub, "replay"))
            return zkit__spool_replay(argc - 1, argv + 1);
        if (!strcmp(sub, "run"))
            return s_run(argc - 1, argv + 1);
        if (sub[0] != '-') {
            fprintf(stderr, "zkit spool: unknown subcommand '%s' (see 'zkit spool --help')\n", sub);
            return ZKIT_EXIT_USAGE;
        }
    }
    return s_run(argc, argv);
}
