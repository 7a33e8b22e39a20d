/*  exec_handler.h (internal to the zkit program): runs one shell command per
    task for `zkit worker --exec` and the workers of `zkit run`.

    The task body goes to the command's stdin, its stdout comes back as the
    result. Safe to call from several handler threads at once: every file
    descriptor is opened close-on-exec, so a command never inherits another
    task's pipes, and each call reaps exactly the child it started.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_EXEC_HANDLER_H_INCLUDED
#define ZKIT_EXEC_HANDLER_H_INCLUDED

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "zkit_worker.h"

typedef struct {
    const char *command;    /* run as /bin/sh -c COMMAND                    */
    uint32_t timeout_ms;    /* kill the command after this long; 0 = never   */
    size_t max_output;      /* stdout bytes accepted; more fails the attempt */
    const atomic_int *stop; /* when non-zero, a running command is killed    */
} zkit__exec_opts_t;

/*  What a command printed on stdout. data is malloc'ed; the caller frees it. */
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
} zkit__exec_output_t;

/*  Runs opts->command in its own process group with input on its stdin,
    writing the input and reading stdout and stderr at once (a command may
    print before it has read everything). extra_env lists "NAME=VALUE"
    strings added to the command's environment (NULL-terminated; may be NULL).

    Returns 0 when the command exited with status 0: out holds its stdout.
    Otherwise returns -1 and writes a reason into reason[reason_size]:
    "exit status N", "killed by signal N", "timed out after N ms",
    "output larger than N bytes", "worker stopping", or a system error,
    followed for the first two by ": " and the first line of stderr
    (truncated). When the command exits, processes it left running in its
    group are killed; on a timeout or a stop the whole group is. The child is
    always reaped before this returns. The process must ignore SIGPIPE: a
    command that exits without reading all of its input is not an error.     */
int zkit__exec_run(const zkit__exec_opts_t *opts, const void *input, size_t input_size,
                   char *const extra_env[], zkit__exec_output_t *out, char *reason,
                   size_t reason_size);

/*  The worker's task handler (a zkit_task_handler_fn) for both `zkit worker
    --exec` and a `zkit run` worker: arg is the zkit__exec_opts_t (borrowed;
    it must outlive the worker). Runs the command with zkit__exec_run, the
    task's body on stdin and ZKIT_TASK_SEQ (the task's number in its batch),
    ZKIT_TASK_ATTEMPT (1 on the first attempt) and ZKIT_BATCH (only when the
    batch name is printable text) in its environment. On success the result's
    body is the command's stdout less one trailing newline; otherwise -1 with
    zkit__exec_run's reason ("out of memory" when the body cannot be set).
    Thread-safe as zkit__exec_run is.                                        */
int zkit__exec_task_handler(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                            size_t reason_size, void *arg);

#endif
