/*  cmd_balancer.c: `zkit balancer`, the load-balancing device.

    Starts a zkit_balancer_t with the options given, prints the bound
    endpoints, and waits for SIGINT or SIGTERM; then prints the counters,
    so a test (or an operator) sees what was dropped and why.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "zkit.h"
#include "zkit_balancer.h"
#include "device_common.h"
#include "zkit_cli.h"

#define S_CMD "balancer"

static const char s_usage_text[] =
    "usage: zkit balancer --frontend EP --backend EP [OPTIONS]\n"
    "\n"
    "Load-balancing device. Clients connect to the frontend, workers to the\n"
    "backend; each request goes to the least recently used worker that is ready\n"
    "and has credit, its reply back to the client. Workers that speak the\n"
    "Paranoid Pirate Protocol (ZeroMQ RFC 6) and plain REQ clients work as they\n"
    "are; zkit's service workers and clients add credit, envelopes and ids.\n"
    "A worker silent for heartbeat x liveness is presumed dead and its requests\n"
    "go to another worker; a request that fails max-attempts times or outlives\n"
    "its ttl is answered with an error and recorded as a dead letter.\n"
    "Protocol: docs/balancer-protocol.md.\n"
    "\n"
    "options:\n"
    "  -f, --frontend EP      endpoint(s) clients connect to, comma-separated\n"
    "                         (tcp://127.0.0.1:* picks a free port)\n"
    "  -b, --backend EP       endpoint(s) workers connect to\n"
    "      --heartbeat MS     heartbeat interval, both ways (default 1000)\n"
    "      --liveness N       missed heartbeats before a worker is presumed dead\n"
    "                         (default 3)\n"
    "      --max-attempts N   attempts before a request is dead-lettered\n"
    "                         (default 5; 0 = no limit)\n"
    "      --timeout MS       an attempt unanswered this long fails and is retried\n"
    "                         (default 0 = off: only a dead worker fails it)\n"
    "      --ttl MS           ttl of requests that carry none (default: none)\n"
    "      --max-requests N   requests held at once; beyond it clients wait\n"
    "                         (default 100000)\n"
    "      --dead-letter DIR  record dead letters in a spool in DIR, durably before\n"
    "                         the client is answered; read them with 'zkit spool\n"
    "                         inspect DIR' and 'zkit spool replay DIR --to EP'\n"
    "                         (default: only logged)\n"
    "      --name NAME        name in log lines (default balancer)\n"
    "  -v, --verbose          log workers arriving and leaving\n"
    "  -h, --help             this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "\n"
    "The frontend and the backend are both bound sockets: with --curve-secret\n"
    "and --curve-allow every client and every worker needs an allowed key.\n"
    "\n"
    "The bound endpoints are printed on stderr as 'zkit balancer: bound ENDPOINT',\n"
    "the frontend first, then 'zkit balancer: control ENDPOINT' with --control.\n"
    "The control endpoint answers STATS (see 'zkit stats'), PING, PAUSE (stop\n"
    "dispatching: requests queue, workers stay registered) and RESUME. On SIGINT\n"
    "or SIGTERM it stops and prints its counters on stderr. Log lines (dropped\n"
    "frames, dead letters) go to stderr too. SIGHUP rescans --curve-allow.\n"
    "\n"
    "Exit status: 0 stopped by a signal; 1 could not start; 2 usage.\n"
    "\n"
    "example:\n"
    "  zkit balancer --frontend tcp://*:5555 --backend tcp://*:5556 \\\n"
    "                --dead-letter /var/lib/zkit/dead\n";

enum {
    S_OPT_HEARTBEAT = 256,
    S_OPT_LIVENESS,
    S_OPT_MAX_ATTEMPTS,
    S_OPT_TIMEOUT,
    S_OPT_TTL,
    S_OPT_MAX_REQUESTS,
    S_OPT_DEAD_LETTER,
    S_OPT_NAME,
};

static const struct option s_long_options[] = {
    {"frontend", required_argument, NULL, 'f'},
    {"backend", required_argument, NULL, 'b'},
    {"heartbeat", required_argument, NULL, S_OPT_HEARTBEAT},
    {"liveness", required_argument, NULL, S_OPT_LIVENESS},
    {"max-attempts", required_argument, NULL, S_OPT_MAX_ATTEMPTS},
    {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
    {"ttl", required_argument, NULL, S_OPT_TTL},
    {"max-requests", required_argument, NULL, S_OPT_MAX_REQUESTS},
    {"dead-letter", required_argument, NULL, S_OPT_DEAD_LETTER},
    {"name", required_argument, NULL, S_OPT_NAME},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* A number option: its name, its range, where it goes.                     */
static int s_number(const char *name, uint64_t min, uint64_t max, uint32_t *out)
{
    return zkit__device_u32_option(S_CMD, name, min, max, out);
}

/*  Returns -1 when the command should run, else the exit code.              */
static int s_parse(zkit_balancer_opts_t *o, int argc, char **argv)
{
    opterr = 0;
    optind = 1;
    int c, rc = -1;
    while (rc == -1 && (c = getopt_long(argc, argv, ":f:b:vh", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'f': o->frontend = optarg; break;
        case 'b': o->backend = optarg; break;
        case S_OPT_HEARTBEAT: rc = s_number("heartbeat", 1, 3600000, &o->heartbeat_ms); break;
        case S_OPT_LIVENESS: rc = s_number("liveness", 1, 100, &o->liveness); break;
        case S_OPT_MAX_ATTEMPTS: rc = s_number("max-attempts", 0, 1000000, &o->max_attempts); break;
        case S_OPT_TIMEOUT: rc = s_number("timeout", 0, UINT32_MAX, &o->attempt_timeout_ms); break;
        case S_OPT_TTL: rc = s_number("ttl", 0, UINT32_MAX, &o->ttl_ms); break;
        case S_OPT_MAX_REQUESTS:
            rc = s_number("max-requests", 1, 100000000, &o->max_requests);
            break;
        case S_OPT_DEAD_LETTER: o->dead_letter_dir = optarg; break;
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
    if (!o->frontend || !*o->frontend)
        return zkit__device_usage_error(S_CMD, "--frontend is required");
    if (!o->backend || !*o->backend)
        return zkit__device_usage_error(S_CMD, "--backend is required");
    if (o->dead_letter_dir && !*o->dead_letter_dir)
        return zkit__device_usage_error(S_CMD, "empty directory for --dead-letter");
    return -1;
}

static void s_print_bad(const char *which, const uint64_t *bad)
{
    fprintf(stderr, "zkit balancer: dropped %s messages:", which);
    for (int i = 0; i < ZKIT_BALANCER_BAD_REASONS_; i++) {
        static const char *const keys[] = {"frames", "command", "field", "route", "envelope"};
        fprintf(stderr, " %s=%" PRIu64, keys[i], bad[i]);
    }
    fputc('\n', stderr);
}

static void s_print_stats(const zkit_balancer_stats_t *s)
{
    fprintf(stderr,
            "zkit balancer: requests=%" PRIu64 " duplicates=%" PRIu64 " dispatched=%" PRIu64
            " replies=%" PRIu64 " unroutable=%" PRIu64 " late_replies=%" PRIu64 " requeued=%" PRIu64
            " nacks=%" PRIu64 " dead_letters=%" PRIu64 " dead_letter_errors=%" PRIu64
            " overloaded=%" PRIu64 "\n",
            s->requests, s->duplicates, s->dispatched, s->replies, s->unroutable, s->late_replies,
            s->requeued, s->nacks, s->dead_letters, s->dead_letter_errors, s->overloaded);
    fprintf(stderr,
            "zkit balancer: workers_ready=%" PRIu64 " workers_expired=%" PRIu64
            " workers_gone=%" PRIu64 " unknown_worker=%" PRIu64 " workers=%" PRIu64
            " queued=%" PRIu64 " in_flight=%" PRIu64 "\n",
            s->workers_ready, s->workers_expired, s->workers_gone, s->unknown_worker, s->workers,
            s->queued, s->in_flight);
    s_print_bad("client", s->bad_frontend);
    s_print_bad("worker", s->bad_backend);
}

int zkit_cmd_balancer(int argc, char **argv)
{
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    int rc = s_parse(&opts, argc, argv);
    if (rc != -1)
        return rc;
    zkit__device_catch_signals();
    /* Logs are diagnostics: stderr, next to the bound lines; stdout stays
       free for whatever a wrapper wants to print.                           */
    zsys_set_logstream(stderr);
    zkit_balancer_t *balancer = zkit_balancer_new(&opts);
    if (!balancer) {
        fprintf(stderr, "zkit balancer: cannot start: %s\n", zkit_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    fprintf(stderr, "zkit balancer: bound %s\n", zkit_balancer_frontend(balancer));
    fprintf(stderr, "zkit balancer: bound %s\n", zkit_balancer_backend(balancer));
    if (zkit_balancer_control(balancer))
        fprintf(stderr, "zkit balancer: control %s\n", zkit_balancer_control(balancer));
    fflush(stderr);
    zkit__device_wait_for_stop();
    zkit_balancer_stats_t stats;
    bool have_stats = zkit_balancer_stats(balancer, &stats) == 0;
    zkit_balancer_destroy(&balancer);
    if (have_stats)
        s_print_stats(&stats);
    return ZKIT_EXIT_OK;
}
