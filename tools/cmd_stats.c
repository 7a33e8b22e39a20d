/*  cmd_stats.c: `zkit stats`, asks a component's control endpoint for its
    STATS and prints them (docs/control-protocol.md; printing in
    stats_format.c).

    One DEALER socket sends ["", "STATS"] and waits up to --timeout for
    ["", reply]. With --watch it asks again every SEC seconds until
    interrupted, clearing the screen between rounds on a terminal and
    appending otherwise. A round without a reply ends the program with exit
    status 1: a late reply could otherwise be taken for the next round's.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zkit.h"
#include "core/security.h"
#include "core/socket.h"
#include "stats_format.h"
#include "zkit_cli.h"

#define S_CMD                "stats"
#define S_DEFAULT_TIMEOUT_MS 5000

static const char s_usage_text[] =
    "usage: zkit stats ENDPOINT [OPTIONS]\n"
    "\n"
    "Asks the control endpoint of a zkit device (its --control EP) for its\n"
    "statistics and prints them: counters, gauges and the peers it knows.\n"
    "\n"
    "options:\n"
    "  -f, --format F         table (default), json (one object per round, one\n"
    "                         line) or prometheus (text exposition format, for\n"
    "                         node_exporter's textfile collector)\n"
    "  -w, --watch SEC        ask again every SEC seconds (e.g. 2 or 0.5) until\n"
    "                         interrupted; on a terminal the screen is cleared\n"
    "                         between rounds, otherwise rounds are appended\n"
    "  -t, --timeout MS       wait at most MS for each reply (default 5000); with\n"
    "                         no reply in time, exit 1\n"
    "      --curve-secret FILE   this client's certificate, for an endpoint\n"
    "                            secured with CURVE\n"
    "      --curve-server FILE   the device's public certificate\n"
    "  -h, --help             this text\n"
    "\n"
    "exit status: 0 printed (or --watch interrupted), 1 no reply, an ERROR\n"
    "reply or a reply that is not STATS, 2 usage.\n"
    "\n"
    "example, every minute from cron, for node_exporter:\n"
    "  zkit stats tcp://127.0.0.1:5600 --format prometheus > lb.prom.tmp &&\n"
    "    mv lb.prom.tmp /var/lib/node_exporter/textfile/lb.prom\n";

static volatile sig_atomic_t s_interrupted = 0;

static void s_on_signal(int signum)
{
    (void) signum;
    s_interrupted = 1;
}

static int s_usage_error(const char *format, const char *arg)
{
    fprintf(stderr, "zkit " S_CMD ": ");
    fprintf(stderr, format, arg);
    fprintf(stderr, " (see 'zkit " S_CMD " --help')\n");
    return ZKIT_EXIT_USAGE;
}

typedef struct {
    const char *endpoint;
    zkit__stats_format_t format;
    double watch_s; /* 0: once */
    long timeout_ms;
    zkit__security_opts_t security;
} s_options_t;

static int s_parse_options(int argc, char **argv, s_options_t *opt, bool *help)
{
    static const struct option longs[] = {
        {"format", required_argument, NULL, 'f'},
        {"watch", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},
        {"curve-secret", required_argument, NULL, 'S'},
        {"curve-server", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:w:t:h", longs, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (zkit__stats_format_parse(optarg, &opt->format) == -1)
                return s_usage_error("unknown format '%s'", optarg);
            break;
        case 'w':
            errno = 0;
            opt->watch_s = strtod(optarg, &end);
            if (errno || *end || end == optarg || !isfinite(opt->watch_s) || opt->watch_s < 0.01 ||
                opt->watch_s > 86400)
                return s_usage_error("--watch needs seconds between 0.01 and 86400, not '%s'",
                                     optarg);
            break;
        case 't':
            errno = 0;
            opt->timeout_ms = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || opt->timeout_ms < 1 || opt->timeout_ms > 86400000)
                return s_usage_error("--timeout needs milliseconds from 1 to 86400000, not '%s'",
                                     optarg);
            break;
        case 'S': opt->security.curve_secret = optarg; break;
        case 'K': opt->security.curve_server = optarg; break;
        case 'h': *help = true; return ZKIT_EXIT_OK;
        case ':': return s_usage_error("%s needs a value", argv[optind - 1]);
        default: return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return s_usage_error("%s",
                             optind < argc ? "exactly one ENDPOINT, please" : "missing ENDPOINT");
    opt->endpoint = argv[optind];
    return ZKIT_EXIT_OK;
}

/*  Waits up to timeout_ms for readable (or for a signal). 1 readable,
    0 not, -1 interrupted.                                                   */
static int s_wait(zsock_t *sock, long timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (!s_interrupted) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0)
            return 0;
        zmq_pollitem_t item = {zsock_resolve(sock), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, (long) (left > 200 ? 200 : left));
        if (rc > 0)
            return 1;
        if (rc == -1 && errno != EINTR)
            return 0;
    }
    return -1;
}

/*  One round: ask, wait, print. Returns an exit status, or -1 when
    interrupted.                                                             */
static int s_round(zsock_t *sock, const s_options_t *opt, zkit__cat_buf_t *out, bool clear)
{
    if (zstr_sendx(sock, "", "STATS", NULL) == -1) {
        if (s_interrupted)
            return -1;
        fprintf(stderr, "zkit " S_CMD ": cannot send to %s: %s\n", opt->endpoint,
                zmq_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    int ready = s_wait(sock, opt->timeout_ms);
    if (ready == -1)
        return -1;
    if (ready == 0) {
        fprintf(stderr, "zkit " S_CMD ": no reply from %s within %ld ms\n", opt->endpoint,
                opt->timeout_ms);
        return ZKIT_EXIT_FAILURE;
    }
    zmsg_t *reply = zmsg_recv(sock);
    if (!reply)
        return s_interrupted ? -1 : ZKIT_EXIT_FAILURE;
    int rc = ZKIT_EXIT_OK;
    zframe_t *first = zmsg_first(reply);
    zframe_t *body = zmsg_next(reply);
    if (zmsg_size(reply) != 2 || zframe_size(first) != 0) {
        fprintf(stderr, "zkit " S_CMD ": %s answered with %zu frames, not [\"\", reply]\n",
                opt->endpoint, zmsg_size(reply));
        rc = ZKIT_EXIT_FAILURE;
    }
    else if (zframe_size(body) >= 5 && !memcmp(zframe_data(body), "ERROR", 5)) {
        zkit__cat_buf_clear(out);
        zkit__cat_json_string(out, zframe_data(body),
                              zframe_size(body) > 256 ? 256 : zframe_size(body));
        fprintf(stderr, "zkit " S_CMD ": %s answered %s\n", opt->endpoint, out->data);
        rc = ZKIT_EXIT_FAILURE;
    }
    else {
        const char *error = NULL;
        size_t skipped = 0;
        zkit__cat_buf_clear(out);
        if (clear)
            zkit__cat_buf_puts(out, "\033[H\033[2J");
        if (zkit__stats_format(out, opt->format, zframe_data(body), zframe_size(body), &error,
                               &skipped) == -1) {
            fprintf(stderr, "zkit " S_CMD ": %s sent a reply that is not STATS: %s\n",
                    opt->endpoint, error);
            rc = ZKIT_EXIT_FAILURE;
        }
        else if (out->failed) {
            fprintf(stderr, "zkit " S_CMD ": out of memory\n");
            rc = ZKIT_EXIT_FAILURE;
        }
        else {
            if (skipped)
                fprintf(stderr,
                        "zkit " S_CMD ": %zu metrics left out: their Prometheus names repeat "
                        "others\n",
                        skipped);
            if (fwrite(out->data, 1, out->size, stdout) != out->size || fflush(stdout) != 0) {
                if (s_interrupted && errno == EINTR)
                    rc = -1;
                else {
                    fprintf(stderr, "zkit " S_CMD ": cannot write the output\n");
                    rc = ZKIT_EXIT_FAILURE;
                }
            }
        }
    }
    zmsg_destroy(&reply);
    return rc;
}

int zkit_cmd_stats(int argc, char **argv)
{
    s_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.format = ZKIT__STATS_FORMAT_TABLE;
    opt.timeout_ms = S_DEFAULT_TIMEOUT_MS;
    zkit__security_opts_t no_security = ZKIT__SECURITY_OPTS_DEFAULT;
    opt.security = no_security;
    bool help = false;
    int rc = s_parse_options(argc, argv, &opt, &help);
    if (rc != ZKIT_EXIT_OK || help) {
        if (help)
            fputs(s_usage_text, stdout);
        return rc;
    }

    zsys_init();
    /* czmq logs to stdout by default: keep stdout for the statistics. */
    zsys_set_logstream(stderr);
    /* Ours, after czmq's, without SA_RESTART: a wait returns EINTR. */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    zkit__security_t *security = zkit__security_new(&opt.security);
    if (!security) {
        fprintf(stderr, "zkit " S_CMD ": cannot set up CURVE (see the log line above)\n");
        return ZKIT_EXIT_USAGE;
    }
    /* A query nobody answered is not worth lingering for. */
    zkit__socket_opts_t sock_opts = ZKIT__SOCKET_OPTS_DEFAULT;
    sock_opts.linger_ms = 0;
    zsock_t *sock = zkit__socket_new(ZMQ_DEALER, &sock_opts);
    if (!sock || zkit__security_apply_client(security, sock) == -1 ||
        zkit__socket_attach(sock, opt.endpoint, false) == -1) {
        fprintf(stderr, "zkit " S_CMD ": cannot connect to %s\n", opt.endpoint);
        zkit__socket_close(&sock, 0);
        zkit__security_destroy(&security);
        return ZKIT_EXIT_USAGE;
    }

    bool tty = isatty(STDOUT_FILENO);
    zkit__cat_buf_t out = {0};
    int rounds = 0;
    while (true) {
        rc = s_round(sock, &opt, &out, opt.watch_s > 0 && tty);
        if (rc == -1) /* interrupted: the end of a watch, a failure otherwise */
            rc = opt.watch_s > 0 && rounds > 0 ? ZKIT_EXIT_OK : ZKIT_EXIT_FAILURE;
        if (rc != ZKIT_EXIT_OK || opt.watch_s <= 0 || s_interrupted)
            break;
        rounds++;
        if (!tty && opt.format != ZKIT__STATS_FORMAT_JSON)
            fputc('\n', stdout); /* rounds apart, when appended */
        int64_t next = zclock_mono() + (int64_t) llround(opt.watch_s * 1000);
        while (!s_interrupted && zclock_mono() < next) {
            int64_t left = next - zclock_mono();
            zmq_poll(NULL, 0, (long) (left > 200 ? 200 : left));
        }
        if (s_interrupted)
            break;
    }
    zkit__cat_buf_free(&out);
    zkit__socket_close(&sock, 0);
    zkit__security_destroy(&security);
    return rc;
}
