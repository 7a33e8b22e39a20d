/*  zkit_cli.h (internal to the zkit program): the subcommands and the exit
    codes every one of them uses.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_CLI_H_INCLUDED
#define ZKIT_CLI_H_INCLUDED

/* Exit codes: 0 success, 1 the work failed (timeout, peer, I/O), 2 usage. */
#define ZKIT_EXIT_OK      0
#define ZKIT_EXIT_FAILURE 1
#define ZKIT_EXIT_USAGE   2

/* Each subcommand gets argv with argv[0] = its own name ("cat", "bench"). */
int zkit_cmd_cat(int argc, char **argv);
int zkit_cmd_bench(int argc, char **argv);

#endif
