/*  device_common.h (internal to the zkit program): what the device commands
    share: option parsing helpers, the operations options (--control,
    --curve-*, --ip-*), one-line usage errors, the SIGINT/SIGTERM flag and
    the SIGHUP reload.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_DEVICE_COMMON_H_INCLUDED
#define ZKIT_DEVICE_COMMON_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zkit_library.h"

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

/*  The operations options every device command takes (zkit_ops_opts_t):
    put ZKIT__DEVICE_OPS_LONG_OPTIONS in the getopt_long table, hand each
    option code to zkit__device_ops_option, and print
    zkit__device_ops_usage in --help.                                        */
enum {
    ZKIT__OPT_CONTROL = 0x1000,
    ZKIT__OPT_CURVE_SECRET,
    ZKIT__OPT_CURVE_SERVER,
    ZKIT__OPT_CURVE_ALLOW,
    ZKIT__OPT_IP_ALLOW,
    ZKIT__OPT_IP_DENY,
};

#define ZKIT__DEVICE_OPS_LONG_OPTIONS                                                              \
    {"control", required_argument, NULL, ZKIT__OPT_CONTROL},                                       \
        {"curve-secret", required_argument, NULL, ZKIT__OPT_CURVE_SECRET},                         \
        {"curve-server", required_argument, NULL, ZKIT__OPT_CURVE_SERVER},                         \
        {"curve-allow", required_argument, NULL, ZKIT__OPT_CURVE_ALLOW},                           \
        {"ip-allow", required_argument, NULL, ZKIT__OPT_IP_ALLOW},                                 \
    {                                                                                              \
        "ip-deny", required_argument, NULL, ZKIT__OPT_IP_DENY                                      \
    }

/*  The --help lines for those options, ending in a newline.                 */
extern const char zkit__device_ops_usage[];

/*  Stores the value of the option c in *ops and returns true, or returns
    false when c is not one of the operations options.                      */
bool zkit__device_ops_option(int c, const char *value, zkit_ops_opts_t *ops);

/*  The value of a number option (getopt's optarg) named name ("window") in
    [min, max] into *out. Returns -1 (go on parsing), or prints "zkit CMD:
    --NAME wants a number from MIN to MAX, not 'X'" and returns
    ZKIT_EXIT_USAGE.                                                          */
int zkit__device_number_option(const char *cmd, const char *name, uint64_t min, uint64_t max,
                               uint64_t *out);

/*  zkit__device_number_option into a uint32_t (max must fit).               */
int zkit__device_u32_option(const char *cmd, const char *name, uint64_t min, uint64_t max,
                            uint32_t *out);

/*  Waits until SIGINT or SIGTERM, carrying out SIGHUP reloads meanwhile:
    the main loop of a device command with nothing else to do.              */
void zkit__device_wait_for_stop(void);

/*  A device command's --help: prints usage, the operations options and
    tail (NULL: nothing) on stdout. Returns ZKIT_EXIT_OK.                     */
int zkit__device_help(const char *usage, const char *tail);

/*  The default branch of a device command's option switch: stores an
    operations option and returns -1 (go on parsing), or reports what
    getopt_long returned as c as a usage error and returns ZKIT_EXIT_USAGE. */
int zkit__device_other_option(const char *cmd, int c, char **argv, zkit_ops_opts_t *ops);

/*  Carries out a SIGHUP that arrived since the last call: rescans the CURVE
    allow directory (zkit_security_reload) and logs the outcome. Device
    commands call it from their main loop; cheap when nothing is pending.
    Returns true when a reload was carried out.                              */
bool zkit__device_reload_pending(void);

/*  Initialises czmq and installs our SIGINT/SIGTERM handler on top of
    czmq's (without SA_RESTART, so blocking reads return EINTR), and ignores
    SIGPIPE so a closed pipe is an error to handle, not death. SIGHUP sets a
    flag that zkit__device_reload_pending() acts on.               */
void zkit__device_catch_signals(void);

/*  True once SIGINT or SIGTERM arrived.                                       */
bool zkit__device_stopping(void);

/*  zclock_mono(): milliseconds on a monotonic clock.                         */
int64_t zkit__device_now_ms(void);

#endif
