/*  device_common.c: what the pipeline device commands share.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_common.h"
#include "zkit_cli.h"

atomic_int zkit__device_stop = 0;

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
    (void) signum;
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
