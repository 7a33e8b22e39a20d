/*  zkit_cli.h (internal to the zkit program): the subcommands and the exit
    codes every one of them uses.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_CLI_H_INCLUDED
#define ZKIT_CLI_H_INCLUDED

/* Exit codes: 0 success, 1 the work failed (timeout, peer, I/O), 2 usage,
   3 a pipeline batch completed but some of its tasks are dead letters (it
   ended, it did not hang: those tasks failed max-attempts times). */
#define ZKIT_EXIT_OK           0
#define ZKIT_EXIT_FAILURE      1
#define ZKIT_EXIT_USAGE        2
#define ZKIT_EXIT_DEAD_LETTERS 3

/* Each subcommand gets argv with argv[0] = its own name ("cat", "bench"). */
int zkit_cmd_cat(int argc, char **argv);
int zkit_cmd_bench(int argc, char **argv);
int zkit_cmd_ventilator(int argc, char **argv);
int zkit_cmd_worker(int argc, char **argv);
int zkit_cmd_sink(int argc, char **argv);
int zkit_cmd_balancer(int argc, char **argv);
int zkit_cmd_stats(int argc, char **argv);
int zkit_cmd_keygen(int argc, char **argv);
int zkit_cmd_spool(int argc, char **argv);
int zkit_cmd_publisher(int argc, char **argv);
int zkit_cmd_subscriber(int argc, char **argv);
int zkit_cmd_forwarder(int argc, char **argv);
int zkit_cmd_run(int argc, char **argv);

#endif
