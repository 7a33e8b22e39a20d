/*  device_common.h (internal to the zkit program): what the pipeline device
    commands (ventilator, worker, sink) share: option parsing helpers,
    one-line usage errors and the SIGINT/SIGTERM flag.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_DEVICE_COMMON_H_INCLUDED
#define ZKIT_DEVICE_COMMON_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*  Set by SIGINT and SIGTERM once zkit__device_catch_signals ran. Atomic:
    handler threads read it too.                                             */
extern atomic_int zkit__device_stop;

/*  Prints "zkit CMD: MESSAGE (see 'zkit CMD --help')" on stderr and returns
    ZKIT_EXIT_USAGE.                                                          */
int zkit__device_usage_error(const char *cmd, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/*  The usage error for what getopt_long returned as c (':' or '?').          */
int zkit__device_getopt_error(const char *cmd, int c, char **argv);

/*  Parses a decimal unsigned integer in [min, max]: digits only, nothing
    after. Returns 0, or -1.                                                 */
int zkit__device_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/*  Initialises czmq and installs our SIGINT/SIGTERM handler on top of
    czmq's (without SA_RESTART, so blocking reads return EINTR), and ignores
    SIGPIPE so a closed pipe is an error to handle, not death.               */
void zkit__device_catch_signals(void);

/*  True once SIGINT or SIGTERM arrived.                                       */
bool zkit__device_stopping(void);

/*  zclock_mono(): milliseconds on a monotonic clock.                         */
int64_t zkit__device_now_ms(void);

#endif
