/*  cmd_forwarder.c: `zkit forwarder`, the XSUB/XPUB device as a program.

    Starts a zkit_forwarder and waits for SIGINT/SIGTERM, printing its
    counters on stderr when asked (SIGUSR1), every --stats-interval ms, and
    once more at exit, as one line of key=value pairs a script can read.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "zkit.h"
#include "device_common.h"
#include "zkit_cli.h"

#define S_CMD     "forwarder"
#define S_TICK_MS 20

static const char s_usage_text[] =
    "usage: zkit forwarder --frontend EP --backend EP [OPTIONS]\n"
    "\n"
    "Forwards a PUB/SUB feed: publishers reach the frontend (XSUB), subscribers\n"
    "the backend (XPUB). Messages pass through unchanged; subscriptions flow\n"
    "back upstream. A forwarder's backend can feed another forwarder.\n"
    "\n"
    "options:\n"
    "  -f, --frontend EP          bind the frontend (publishers connect here)\n"
    "      --frontend-connect EP  connect the frontend: to publishers that bind,\n"
    "                             or to an upstream forwarder's backend\n"
    "  -b, --backend EP           bind the backend (subscribers connect here)\n"
    "      --backend-connect EP   connect the backend\n"
    "                             (each EP may be a comma-separated list;\n"
    "                             tcp://127.0.0.1:* picks a free port)\n"
    "  -p, --policy P             what a subscriber that cannot keep up costs:\n"
    "                             drop (default): it misses messages, nobody else\n"
    "                             does; disconnect: as drop, and it is disconnected\n"
    "                             when its queue stays full for --laggard-ms;\n"
    "                             nodrop: nothing is dropped, everyone waits for it\n"
    "      --hwm N                messages queued per subscriber (default 1000)\n"
    "      --laggard-ms MS        disconnect: how long a queue may stay full (2000)\n"
    "      --laggard-bytes N      disconnect: unsent bytes that mark a connection\n"
    "                             as not reading (65536)\n"
    "      --tap EP               bind a capture socket that gets a copy of every\n"
    "                             message (it never slows the feed)\n"
    "      --tap-connect          connect the tap instead of binding it\n"
    "      --tap-type T           pub (default) or push\n"
    "      --tap-hwm N            copies queued for the tap before it drops them\n"
    "                             (default 10000)\n"
    "      --stats-interval MS    print the counters every MS ms\n"
    "      --linger MS            at exit, how long queued messages may take (30000)\n"
    "  -h, --help                 this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "Bound sockets (--frontend, --backend, --tap) are CURVE servers with\n"
    "--curve-secret and --curve-allow: every publisher and subscriber needs an\n"
    "allowed key. Connected ones (--frontend-connect, ...) are CURVE clients with\n"
    "--curve-secret and --curve-server. SIGHUP rescans the allow directory.\n"
    "\n"
    "Lines on stderr: 'zkit forwarder: bound EP' for the frontend, then the\n"
    "backend; 'zkit forwarder: tap EP'; 'zkit forwarder: control EP' with\n"
    "--control; and 'zkit forwarder: stats k=v ...' on SIGUSR1, every\n"
    "--stats-interval, and at exit. The control endpoint answers STATS (see 'zkit\n"
    "stats'), PING, PAUSE (stop reading the frontend: publishers' queues fill,\n"
    "then they drop or wait by their own policy) and RESUME.\n"
    "\n"
    "example:\n"
    "  zkit forwarder --frontend tcp://*:5556 --backend tcp://*:5557\n";

enum {
    S_OPT_FRONTEND_CONNECT = 256,
    S_OPT_BACKEND_CONNECT,
    S_OPT_HWM,
    S_OPT_LAGGARD_MS,
    S_OPT_LAGGARD_BYTES,
    S_OPT_TAP,
    S_OPT_TAP_CONNECT,
    S_OPT_TAP_TYPE,
    S_OPT_TAP_HWM,
    S_OPT_STATS_INTERVAL,
    S_OPT_LINGER,
};

static const struct option s_long_options[] = {
    {"frontend", required_argument, NULL, 'f'},
    {"frontend-connect", required_argument, NULL, S_OPT_FRONTEND_CONNECT},
    {"backend", required_argument, NULL, 'b'},
    {"backend-connect", required_argument, NULL, S_OPT_BACKEND_CONNECT},
    {"policy", required_argument, NULL, 'p'},
    {"hwm", required_argument, NULL, S_OPT_HWM},
    {"laggard-ms", required_argument, NULL, S_OPT_LAGGARD_MS},
    {"laggard-bytes", required_argument, NULL, S_OPT_LAGGARD_BYTES},
    {"tap", required_argument, NULL, S_OPT_TAP},
    {"tap-connect", no_argument, NULL, S_OPT_TAP_CONNECT},
    {"tap-type", required_argument, NULL, S_OPT_TAP_TYPE},
    {"tap-hwm", required_argument, NULL, S_OPT_TAP_HWM},
    {"stats-interval", required_argument, NULL, S_OPT_STATS_INTERVAL},
    {"linger", required_argument, NULL, S_OPT_LINGER},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static volatile sig_atomic_t s_stats_wanted = 0;

static void s_on_usr1(int signum)
{
    (void) signum;
    s_stats_wanted = 1;
}

/*  Returns -1 when the command should run, else the exit code.              */
static int s_parse(zkit_forwarder_opts_t *o, uint64_t *interval, int argc, char **argv)
{
    opterr = 0;
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":f:b:p:h", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'f': o->frontend = optarg; break;
        case S_OPT_FRONTEND_CONNECT: o->frontend_connect = optarg; break;
        case 'b': o->backend = optarg; break;
        case S_OPT_BACKEND_CONNECT: o->backend_connect = optarg; break;
        case 'p':
            if (zkit_forwarder_policy_parse(optarg, &o->policy) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--policy is drop, disconnect or nodrop, not '%s'", optarg);
            break;
        case S_OPT_HWM:
            if (zkit__device_parse_uint(optarg, 0, INT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--hwm wants a count, not '%s'", optarg);
            o->hwm = (int) v;
            break;
        case S_OPT_LAGGARD_MS:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--laggard-ms wants milliseconds, not '%s'",
                                                optarg);
            o->laggard_ms = (uint32_t) v;
            break;
        case S_OPT_LAGGARD_BYTES:
            if (zkit__device_parse_uint(optarg, 1, INT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--laggard-bytes wants bytes, not '%s'",
                                                optarg);
            o->laggard_bytes = (size_t) v;
            break;
        case S_OPT_TAP: o->tap = optarg; break;
        case S_OPT_TAP_CONNECT: o->tap_connect = true; break;
        case S_OPT_TAP_TYPE:
            if (streq(optarg, "pub"))
                o->tap_type = ZMQ_PUB;
            else if (streq(optarg, "push"))
                o->tap_type = ZMQ_PUSH;
            else
                return zkit__device_usage_error(S_CMD, "--tap-type is pub or push, not '%s'",
                                                optarg);
            break;
        case S_OPT_TAP_HWM:
            if (zkit__device_parse_uint(optarg, 0, INT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--tap-hwm wants a count, not '%s'", optarg);
            o->tap_hwm = (int) v;
            break;
        case S_OPT_STATS_INTERVAL:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, interval) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--stats-interval wants milliseconds, not '%s'", optarg);
            break;
        case S_OPT_LINGER:
            if (zkit__device_parse_uint(optarg, 0, INT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--linger wants milliseconds, not '%s'",
                                                optarg);
            o->linger_ms = (int) v;
            break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: {
            int rc = zkit__device_other_option(S_CMD, c, argv, &o->ops);
            if (rc != -1)
                return rc;
        }
        }
    }
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->frontend && !o->frontend_connect)
        return zkit__device_usage_error(S_CMD, "--frontend or --frontend-connect is required");
    if (!o->backend && !o->backend_connect)
        return zkit__device_usage_error(S_CMD, "--backend or --backend-connect is required");
    return -1;
}

static void s_print_stats(zkit_forwarder_t *fwd)
{
    zkit_forwarder_stats_t s;
    if (zkit_forwarder_stats(fwd, &s) == -1)
        return;
    fprintf(stderr,
            "zkit forwarder: stats msgs_in=%" PRIu64 " bytes_in=%" PRIu64 " msgs_out=%" PRIu64
            " bytes_out=%" PRIu64 " drops_hwm=%" PRIu64 " drops_shutdown=%" PRIu64
            " nodrop_waits=%" PRIu64 " laggards=%" PRIu64 " subscribe=%" PRIu64
            " unsubscribe=%" PRIu64 " upstream=%" PRIu64 " tap_msgs=%" PRIu64 " tap_drops=%" PRIu64
            " connections=%" PRIu64 " bad_frames=%" PRIu64 " bad_upstream=%" PRIu64
            " paused=%" PRIu64 "\n",
            s.msgs_in, s.bytes_in, s.msgs_out, s.bytes_out, s.drops_hwm, s.drops_shutdown,
            s.nodrop_waits, s.laggards, s.subscribe, s.unsubscribe, s.upstream, s.tap_msgs,
            s.tap_drops, s.connections, s.bad_frames, s.bad_upstream, s.paused);
    fflush(stderr);
}

int zkit_cmd_forwarder(int argc, char **argv)
{
    zkit_forwarder_opts_t opts = ZKIT_FORWARDER_OPTS_DEFAULT;
    uint64_t interval = 0;
    int rc = s_parse(&opts, &interval, argc, argv);
    if (rc >= 0)
        return rc;
    zkit__device_catch_signals();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_usr1;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);

    zkit_forwarder_t *fwd = zkit_forwarder_new(&opts);
    if (!fwd) {
        fprintf(stderr, "zkit forwarder: cannot start: %s\n", zkit_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    if (zkit_forwarder_frontend(fwd))
        fprintf(stderr, "zkit forwarder: bound %s\n", zkit_forwarder_frontend(fwd));
    if (zkit_forwarder_backend(fwd))
        fprintf(stderr, "zkit forwarder: bound %s\n", zkit_forwarder_backend(fwd));
    if (zkit_forwarder_tap(fwd))
        fprintf(stderr, "zkit forwarder: tap %s\n", zkit_forwarder_tap(fwd));
    if (zkit_forwarder_control(fwd))
        fprintf(stderr, "zkit forwarder: control %s\n", zkit_forwarder_control(fwd));
    fprintf(stderr, "zkit forwarder: running, policy %s\n",
            zkit_forwarder_policy_name(opts.policy));
    fflush(stderr);

    int64_t next_stats = interval ? zkit__device_now_ms() + (int64_t) interval : INT64_MAX;
    while (!zkit__device_stopping()) {
        zclock_sleep(S_TICK_MS);
        zkit__device_reload_pending();
        if (s_stats_wanted || zkit__device_now_ms() >= next_stats) {
            s_stats_wanted = 0;
            s_print_stats(fwd);
            if (interval)
                next_stats = zkit__device_now_ms() + (int64_t) interval;
        }
    }
    s_print_stats(fwd);
    zkit_forwarder_destroy(&fwd);
    return ZKIT_EXIT_OK;
}
