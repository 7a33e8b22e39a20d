/*  spool_cli.h (internal to the zkit program): the subcommands of
    `zkit spool` besides running the device (cmd_spool.c), and the helpers
    they share.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_CLI_H_INCLUDED
#define ZKIT_SPOOL_CLI_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

/*  `zkit spool inspect`, `verify` and `replay`. argv[0] is the subcommand's
    name. Each returns a ZKIT_EXIT_* code.                                    */
int zkit__spool_inspect(int argc, char **argv);
int zkit__spool_verify(int argc, char **argv);
int zkit__spool_replay(int argc, char **argv);

/*  "2025-11-22T10:00:00.123456Z" for a time in microseconds since the Unix
    epoch, into buf (at least 32 bytes); "-" for 0. Returns buf.             */
const char *zkit__spool_fmt_time(uint64_t usec, char *buf, size_t size);

/*  Parses a time: RFC 3339 ("2025-11-22T10:00:00Z", fraction and a
    numeric offset allowed) or Unix seconds ("1763805600", "1763805600.5").
    Returns 0 and *usec, or -1.                                               */
int zkit__spool_parse_time(const char *text, uint64_t *usec);

/*  Parses a byte count: digits with an optional suffix k, m or g (binary:
    KiB, MiB, GiB). Returns 0, or -1 when malformed or above max.            */
int zkit__spool_parse_bytes(const char *text, uint64_t max, uint64_t *out);

#endif
