/*  cmd_worker.c: `zkit worker`, runs a shell command for each task.

    Starts a zkit_worker_t whose handler (exec_handler.c) feeds the task's
    body to the command's stdin and returns its stdout as the result. The
    worker component heartbeats on its own thread while commands run, so a
    long command does not make the ventilator presume this worker dead.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zkit.h"
#include "zkit_worker.h"
#include "device_common.h"
#include "exec_handler.h"
#include "zkit_cli.h"

#define S_CMD "worker"
/* A result is one envelope frame of at most 16 MiB; leave room for meta.   */
#define S_MAX_OUTPUT (16u * 1024 * 1024 - 64 * 1024)

static const char s_usage_text[] =
    "usage: zkit worker --connect EP --sink EP --exec COMMAND [OPTIONS]\n"
    "\n"
    "Takes tasks from a ventilator, runs COMMAND for each (with /bin/sh -c), and\n"
    "sends what it prints to the sink. The task's body is COMMAND's stdin; its\n"
    "stdout, less one trailing newline, is the result. A non-zero exit status, a\n"
    "signal or --exec-timeout fails the attempt; the ventilator then gives the\n"
    "task to a worker again, and after its max-attempts reports it as a dead\n"
    "letter with the reason (e.g. 'exit status 3: first line of stderr').\n"
    "COMMAND runs in its own process group; processes it leaves running are\n"
    "killed when it exits. Runs until SIGINT or SIGTERM; commands still running\n"
    "then are killed, and their tasks go to other workers (with --fast they are\n"
    "lost: fast mode delivers at most once).\n"
    "\n"
    "options:\n"
    "  -c, --connect EP       the ventilator's endpoint(s), comma-separated\n"
    "  -s, --sink EP          the sink's endpoint(s)\n"
    "  -e, --exec COMMAND     the shell command run for each task\n"
    "  -w, --window N         tasks run at once (1-10000, default 1)\n"
    "      --fast             fast mode (PULL/PUSH, at most once): the ventilator\n"
    "                         and sink must use --fast too\n"
    "      --heartbeat MS     heartbeat interval (default 1000)\n"
    "      --liveness N       missed heartbeats before the ventilator is presumed\n"
    "                         dead and the worker reconnects (default 3)\n"
    "      --exec-timeout MS  kill COMMAND after MS ms and fail the attempt\n"
    "                         (default: no limit)\n"
    "      --name NAME        this worker's name in results (default worker-PID-N)\n"
    "  -h, --help             this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "\n"
    "The ventilator and the sink are bound sockets, the worker connects to both:\n"
    "give --curve-secret with --curve-server, the servers' public certificate\n"
    "(one for both: the ventilator and the sink then run with the same\n"
    "--curve-secret). With --control, 'zkit worker: control ENDPOINT' follows\n"
    "the started line. The control\n"
    "endpoint answers STATS, PING, PAUSE (take no new task: the link to the\n"
    "ventilator is closed, so it gives the tasks not started here to others;\n"
    "running ones finish) and RESUME (connect again). SIGHUP is accepted.\n"
    "\n"
    "COMMAND's environment also has ZKIT_TASK_SEQ (the task's number in its\n"
    "batch), ZKIT_TASK_ATTEMPT (1 on the first attempt) and ZKIT_BATCH.\n"
    "Once started, the worker prints 'zkit worker: started' on stderr.\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 could not start, 2 usage.\n"
    "\n"
    "example:\n"
    "  zkit worker --connect tcp://host:5557 --sink tcp://host:5558 \\\n"
    "              --exec 'gzip -c | wc -c' --window 4\n";

typedef struct {
    zkit_worker_opts_t worker;
    zkit__exec_opts_t exec;
} s_options_t;

enum { S_OPT_FAST = 256, S_OPT_HEARTBEAT, S_OPT_LIVENESS, S_OPT_EXEC_TIMEOUT, S_OPT_NAME };

static const struct option s_long_options[] = {
    {"connect", required_argument, NULL, 'c'},
    {"sink", required_argument, NULL, 's'},
    {"exec", required_argument, NULL, 'e'},
    {"window", required_argument, NULL, 'w'},
    {"fast", no_argument, NULL, S_OPT_FAST},
    {"heartbeat", required_argument, NULL, S_OPT_HEARTBEAT},
    {"liveness", required_argument, NULL, S_OPT_LIVENESS},
    {"exec-timeout", required_argument, NULL, S_OPT_EXEC_TIMEOUT},
    {"name", required_argument, NULL, S_OPT_NAME},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int s_parse(s_options_t *o, int argc, char **argv)
{
    zkit_worker_opts_t defaults = ZKIT_WORKER_OPTS_DEFAULT;
    memset(o, 0, sizeof *o);
    o->worker = defaults;
    o->exec.max_output = S_MAX_OUTPUT;
    o->exec.stop = &zkit__device_stop;
    opterr = 0;
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":c:s:e:w:h", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
        case 's':
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty endpoint for %s",
                                                c == 'c' ? "--connect" : "--sink");
            if (c == 'c')
                o->worker.connect = optarg;
            else
                o->worker.sink = optarg;
            break;
        case 'e':
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty command for --exec");
            o->exec.command = optarg;
            break;
        case 'w':
            if (zkit__device_parse_uint(optarg, 1, 10000, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--window wants 1 to 10000, not '%s'",
                                                optarg);
            o->worker.window = (uint32_t) v;
            break;
        case S_OPT_FAST: o->worker.fast = true; break;
        case S_OPT_HEARTBEAT:
            if (zkit__device_parse_uint(optarg, 1, 3600000, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--heartbeat wants milliseconds (1 to 3600000), not '%s'", optarg);
            o->worker.heartbeat_ms = (uint32_t) v;
            break;
        case S_OPT_LIVENESS:
            if (zkit__device_parse_uint(optarg, 1, 1000, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--liveness wants 1 to 1000, not '%s'",
                                                optarg);
            o->worker.liveness = (uint32_t) v;
            break;
        case S_OPT_EXEC_TIMEOUT:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--exec-timeout wants milliseconds (1 or more), not '%s'", optarg);
            o->exec.timeout_ms = (uint32_t) v;
            break;
        case S_OPT_NAME:
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty name for --name");
            o->worker.name = optarg;
            break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: {
            int rc = zkit__device_other_option(S_CMD, c, argv, &o->worker.ops);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->worker.connect)
        return zkit__device_usage_error(S_CMD, "--connect is required");
    if (!o->worker.sink)
        return zkit__device_usage_error(S_CMD, "--sink is required");
    if (!o->exec.command)
        return zkit__device_usage_error(S_CMD, "--exec is required");
    return -1;
}

int zkit_cmd_worker(int argc, char **argv)
{
    s_options_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc >= 0)
        return rc;

    zkit__device_catch_signals();
    o.worker.handler = zkit__exec_task_handler;
    o.worker.handler_arg = &o.exec;
    zkit_worker_t *worker = zkit_worker_new(&o.worker);
    if (!worker) {
        fprintf(stderr, "zkit worker: cannot start: %s\n", zkit_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    fprintf(stderr, "zkit worker: started: tasks from %s, results to %s, window %u\n",
            o.worker.connect, o.worker.sink, o.worker.window);
    if (zkit_worker_control(worker))
        fprintf(stderr, "zkit worker: control %s\n", zkit_worker_control(worker));

    /* Everything happens on the worker's threads; this one waits for a
       signal. A signal may land on another thread, so look now and then. */
    zkit__device_wait_for_stop();
    /* Handlers see the flag too: running commands are killed, so the
       destroy below does not wait for them to finish. */
    atomic_store(&zkit__device_stop, 1);

    zkit_worker_stats_t stats;
    memset(&stats, 0, sizeof stats);
    zkit_worker_stats(worker, &stats);
    zkit_worker_destroy(&worker);
    fprintf(stderr,
            "zkit worker: stopped: %" PRIu64 " tasks, %" PRIu64 " succeeded, %" PRIu64
            " failed, %" PRIu64 " reconnects\n",
            stats.tasks, stats.succeeded, stats.failed, stats.reconnects);
    return ZKIT_EXIT_OK;
}
