/*  cmd_bench.c: `zkit bench SUITE`, zkit against the raw baseline in one run.

    Each suite measures the kit and the anchor a user would otherwise pick,
    alternating, and prints both with the ratio (docs/performance.md). The
    targets it shows are informational: a suite exits 0 whether they are met
    or not, 1 only when the work itself failed, 2 on a usage error.

    Adding a suite is one line in s_suites below (and its declaration in
    bench.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "zkit_cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} s_suite_t;

static const s_suite_t s_suites[] = {
    {"envelope", zkit__bench_envelope, "envelope encode/decode vs msgpack-c's generic API"},
    {"pipeline", zkit__bench_pipeline, "pipeline msg/s and CPU ns/msg vs raw libzmq PUSH/PULL"},
    {"balancer", zkit__bench_balancer, "request round trips through the balancer vs raw zmq_proxy"},
    {"spool", zkit__bench_spool, "spool appends/s and ack latency vs raw write+fdatasync"},
    {"pubsub", zkit__bench_pubsub, "msg/s per subscriber through the forwarder vs raw zmq_proxy"},
};

#define S_SUITE_COUNT (sizeof s_suites / sizeof s_suites[0])

static void s_usage(FILE *out)
{
    fprintf(out, "usage: zkit bench SUITE [OPTIONS]\n"
                 "       zkit bench --list\n"
                 "\n"
                 "Runs zkit and the raw baseline side by side in the same process, alternating,\n"
                 "and prints both (median of the rounds) with the ratio zkit / baseline.\n"
                 "Targets are shown for information; the exit status does not depend on them.\n"
                 "\n"
                 "suites:\n");
    for (size_t i = 0; i < S_SUITE_COUNT; i++)
        fprintf(out, "  %-10s %s\n", s_suites[i].name, s_suites[i].summary);
    fprintf(out, "\n"
                 "options every suite takes:\n" ZKIT__BENCH_COMMON_HELP "\n"
                 "'zkit bench SUITE --help' describes a suite.\n");
}

int zkit_cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return ZKIT_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        s_usage(stdout);
        return ZKIT_EXIT_OK;
    }
    if (!strcmp(name, "--list")) {
        /* One name per line, for scripts that run every suite. */
        for (size_t i = 0; i < S_SUITE_COUNT; i++)
            printf("%s\n", s_suites[i].name);
        return ZKIT_EXIT_OK;
    }
    for (size_t i = 0; i < S_SUITE_COUNT; i++)
        if (!strcmp(name, s_suites[i].name))
            return s_suites[i].run(argc - 1, argv + 1);
    fprintf(stderr, "zkit bench: unknown suite '%s'\n\n", name);
    s_usage(stderr);
    return ZKIT_EXIT_USAGE;
}
