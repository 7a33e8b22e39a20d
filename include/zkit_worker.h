/*  zkit_worker.h: takes tasks, runs a handler, emits results.

    A czmq actor owns the sockets and heartbeats. Where handlers run:
    - reliable mode, any window: on window handler threads of their own, so
      a long task never silences the heartbeat;
    - fast mode, window > 1: on window handler threads, as many at once;
    - fast mode, window 1: on the actor's own thread, the one that owns the
      sockets, as each task arrives. Fast mode has no heartbeat to keep and
      runs one task at a time anyway, so a thread and two hand-offs per task
      would buy nothing. While a handler runs, zkit_worker_stats waits for it
      and no task is read. The handler always runs on that one thread.
    In reliable mode a task is reported DONE to the ventilator only after the
    sink acknowledged its result; a result the sink has not acknowledged
    after 10 sends (10 x heartbeat x liveness) is given up and the attempt
    reported failed, so the ventilator can give the task to another worker.
    Protocol: docs/pipeline-protocol.md.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_WORKER_H_INCLUDED
#define ZKIT_WORKER_H_INCLUDED

#include "zkit_envelope.h"
#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_worker_t zkit_worker_t;

/*  Runs one task, on a handler thread (or, in fast mode with window 1, on the
    worker's socket thread: see above). task is read-only; result is an empty
    envelope to fill (body, and any meta; corr, batch, hdr task-seq, att, src
    and seq are set by the worker afterwards). Return 0 for success, or -1 for
    a failed attempt after writing a short reason (NUL-terminated) into
    reason[reason_size]. Must be thread-safe when window > 1.                 */
typedef int(zkit_task_handler_fn)(const zkit_envelope_t *task, zkit_envelope_t *result,
                                  char *reason, size_t reason_size, void *arg);

typedef struct {
    const char *connect; /* the ventilator's endpoint(s); required          */
    const char *sink;    /* the sink's endpoint(s); required                */
    bool fast;           /* fast mode: PULL tasks, PUSH results, no acks     */
    const char *name;    /* meta src of results; NULL = "worker-<pid>-<n>"   */
    uint32_t window;     /* tasks held and run at once (handler threads; fast
                            mode with 1: none, the socket thread runs them)  */
    uint32_t heartbeat_ms;
    uint32_t liveness;
    uint32_t reconnect_ms;         /* first reconnect delay; doubles up to 32x       */
    zkit_task_handler_fn *handler; /* required                             */
    void *handler_arg;
    zkit_ops_opts_t ops; /* control endpoint and security (zkit_library.h) */
} zkit_worker_opts_t;

#define ZKIT_WORKER_OPTS_DEFAULT                                                                   \
    {                                                                                              \
        .connect = NULL, .sink = NULL, .fast = false, .name = NULL, .window = 1,                   \
        .heartbeat_ms = 1000, .liveness = 3, .reconnect_ms = 250, .handler = NULL,                 \
        .handler_arg = NULL                                                                        \
    }

/*  Counters of one worker.                                                    */
typedef struct {
    uint64_t tasks;      /* tasks received                                   */
    uint64_t succeeded;  /* handler returned 0 and (reliable mode) the sink
                            acked the result                                 */
    uint64_t failed;     /* handler returned -1 (FAIL sent)                  */
    uint64_t reconnects; /* times the ventilator was presumed dead           */
    uint64_t gaps;       /* fast mode: missing task seqs seen; meaningful
                            only for a ventilator's only worker, since PUSH
                            deals tasks out among workers                    */
} zkit_worker_stats_t;

/*  Starts a worker. Returns after its sockets are created and connected (a
    connect succeeds before the peer exists); NULL with errno EINVAL for bad
    options or the connect's error, with a log line.                          */
ZKIT_EXPORT zkit_worker_t *zkit_worker_new(const zkit_worker_opts_t *opts);

/*  Stops the worker, waits for running handlers to return, nulls *self_p;
    safe on NULL. Reliable mode: tasks it held and had not finished are
    retried elsewhere by the ventilator. Fast mode: the few tasks already
    queued to a handler thread (up to 16 each) are run first and their
    results sent, since no one else will run them; with window 1 the task
    running finishes and its result is sent.                                  */
ZKIT_EXPORT void zkit_worker_destroy(zkit_worker_t **self_p);

/*  Fills *stats. Returns 0, or -1 with errno ECANCELED when it stopped.      */
ZKIT_EXPORT int zkit_worker_stats(zkit_worker_t *self, zkit_worker_stats_t *stats);

/*  The control endpoint (opts.ops.control), resolved, owned by the worker and
    valid until destroy; NULL when it has none. It answers STATS (metrics in
    docs/pipeline-protocol.md, section 8), PING, and PAUSE/RESUME: paused, the
    worker takes no new task. Reliable mode closes its link to the
    ventilator, which then gives the tasks not started here to other workers
    (an attempt each); tasks already running finish and their results are
    delivered; RESUME connects again. Fast mode stops reading tasks.          */
ZKIT_EXPORT const char *zkit_worker_control(zkit_worker_t *self);

#ifdef __cplusplus
}
#endif

#endif
