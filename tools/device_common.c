/*  device_common.c: what the device commands share.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_common.h"
#include "zkit_cli.h"

atomic_int zkit__device_stop = 0;
static atomic_int s_reload_wanted = 0;

const char zkit__device_ops_usage[] =
    "operations (docs/control-protocol.md, docs/security.md):\n"
    "      --control EP           answer STATS, PING, PAUSE, RESUME here\n"
    "                             (read it with 'zkit stats EP')\n"
    "      --curve-secret FILE    this device's certificate (zkit keygen)\n"
    "      --curve-allow DIR      bound sockets: CURVE, admitting the public\n"
    "                             certificates in DIR (rescanned on change and\n"
    "                             on SIGHUP); '*' admits any key\n"
    "      --curve-server FILE    connecting sockets: CURVE, to the server with\n"
    "                             this public certificate\n"
    "      --ip-allow LIST        bound sockets: only these addresses may connect\n"
    "      --ip-deny LIST         bound sockets: refuse these addresses\n";

bool zkit__device_ops_option(int c, const char *value, zkit_ops_opts_t *ops)
{
    switch (c) {
    case ZKIT__OPT_CONTROL: ops->control = value; return true;
    case ZKIT__OPT_CURVE_SECRET: ops->curve_secret = value; return true;
    case ZKIT__OPT_CURVE_SERVER: ops->curve_server = value; return true;
    case ZKIT__OPT_CURVE_ALLOW: ops->curve_allow = value; return true;
    case ZKIT__OPT_IP_ALLOW: ops->ip_allow = value; return true;
    case ZKIT__OPT_IP_DENY: ops->ip_deny = value; return true;
    default: return false;
    }
}

int zkit__device_number_option(const char *cmd, const char *name, uint64_t min, uint64_t max,
                               uint64_t *out)
{
    if (zkit__device_parse_uint(optarg, min, max, out) == -1)
        return zkit__device_usage_error(
            cmd, "--%s wants a number from %" PRIu64 " to %" PRIu64 ", not '%s'", name, min, max,
            optarg);
    return -1;
}

int zkit__device_u32_option(const char *cmd, const char *name, uint64_t min, uint64_t max,
                            uint32_t *out)
{
    uint64_t v = 0;
    int rc = zkit__device_number_option(cmd, name, min, max, &v);
    if (rc == -1)
        *out = (uint32_t) v;
    return rc;
}

void zkit__device_wait_for_stop(void)
{
    while (!zkit__device_stopping()) {
        zkit__device_reload_pending();
        /* Signals interrupt poll(); the timeout is only a safety net.       */
        poll(NULL, 0, 1000);
    }
}

int zkit__device_help(const char *usage, const char *tail)
{
    fputs(usage, stdout);
    fputs(zkit__device_ops_usage, stdout);
    if (tail)
        fputs(tail, stdout);
    return ZKIT_EXIT_OK;
}

int zkit__device_other_option(const char *cmd, int c, char **argv, zkit_ops_opts_t *ops)
{
    if (zkit__device_ops_option(c, optarg, ops))
        return -1;
    return zkit__device_getopt_error(cmd, c, argv);
}

bool zkit__device_reload_pending(void)
{
    if (!atomic_exchange(&s_reload_wanted, 0))
        return false;
    if (zkit_security_reload() == 0)
        zsys_info("ZKIT-RELOAD: SIGHUP: allow directory rescanned");
    else
        zsys_error("ZKIT-RELOAD: SIGHUP: cannot rescan the allow directory: %s; the keys "
                   "loaded before stay in force",
                   zkit_strerror(errno));
    return true;
}

int zkit__device_usage_error(const char *cmd, const char *format, ...)
{
    fprintf(stderr, "zkit %s: ", cmd);
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, " (see 'zkit %s --help')\n", cmd);
    return ZKIT_EXIT_USAGE;
}

int zkit__device_getopt_error(const char *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return zkit__device_usage_error(cmd, "%s needs a value", arg);
    const char *eq = strchr(arg, '=');
    if (!strncmp(arg, "--", 2) && eq && optopt)
        return zkit__device_usage_error(cmd, "%.*s takes no value", (int) (eq - arg), arg);
    if (optopt && optopt < 256)
        return zkit__device_usage_error(cmd, "unknown option '-%c'", optopt);
    return zkit__device_usage_error(cmd, "unknown option '%s'", arg);
}

int zkit__device_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void s_on_signal(int signum)
{
    if (signum == SIGHUP)
        atomic_store(&s_reload_wanted, 1);
    else
        atomic_store(&zkit__device_stop, 1);
}

void zkit__device_catch_signals(void)
{
    zsys_init();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool zkit__device_stopping(void)
{
    return atomic_load(&zkit__device_stop) || zsys_interrupted;
}

int64_t zkit__device_now_ms(void)
{
    return zclock_mono();
}
