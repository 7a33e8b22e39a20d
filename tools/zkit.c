/*  zkit: the one program. Dispatches to a subcommand; each subcommand parses its
    own options and starts the same component an embedding service would.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "zkit.h"
#include "zkit_cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"cat", zkit_cmd_cat, "send and receive messages on any socket type (debugging)"},
    {"ventilator", zkit_cmd_ventilator, "pipeline: hand out one task per input line"},
    {"worker", zkit_cmd_worker, "pipeline: run a shell command for each task"},
    {"sink", zkit_cmd_sink, "pipeline: collect the results of a batch into a file"},
    {"balancer", zkit_cmd_balancer, "load-balance requests from clients over ready workers"},
    {"spool", zkit_cmd_spool, "store-and-forward device (and inspect, verify, replay)"},
    {"publisher", zkit_cmd_publisher, "pub/sub: publish numbered envelopes, serve replay"},
    {"subscriber", zkit_cmd_subscriber, "pub/sub: receive, detect gaps, recover from replay"},
    {"forwarder", zkit_cmd_forwarder, "pub/sub: XSUB/XPUB device with a slow-subscriber policy"},
    {"run", zkit_cmd_run, "run a topology of devices from a ZPL file (reload on SIGHUP)"},
    {"bench", zkit_cmd_bench, "measure zkit against the raw baseline in the same run"},
    {"stats", zkit_cmd_stats, "print a device's statistics (table, JSON, Prometheus)"},
    {"keygen", zkit_cmd_keygen, "make a CURVE keypair (NAME, NAME_secret) for --curve-*"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: zkit [--help] [--version] COMMAND [ARGS]\n"
                 "\n"
                 "zkit: ZeroMQ messaging patterns, brokerless, with envelopes on every message.\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "\n'zkit COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    /* czmq logs to stdout by default, where a command's output goes (JSON,
       results, tables); diagnostics belong on stderr, for every command. */
    zsys_set_logstream(stderr);
    if (argc < 2) {
        s_usage(stderr);
        return ZKIT_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        s_usage(stdout);
        return ZKIT_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("zkit %s (envelope v%d)\n", zkit_version(), ZKIT_ENVELOPE_VERSION);
        return ZKIT_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(name, s_commands[i].name))
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "zkit: unknown command '%s'\n\n", name);
    s_usage(stderr);
    return ZKIT_EXIT_USAGE;
}
