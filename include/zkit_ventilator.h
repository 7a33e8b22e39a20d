/*  zkit_ventilator.h: hands out the tasks of a batch to workers.

    A czmq actor: one thread owns the sockets. Fast mode pushes tasks (at most
    once). Reliable mode (the default) holds every task until the sink has
    stored its result, gives a dead, hung or failing worker's tasks to another
    worker, and dead-letters a task after max_attempts, reporting it to the
    sink so the batch still ends. When the sink says the batch is complete,
    tasks still held (their DONE was lost with their worker) are retired.
    Protocol: docs/pipeline-protocol.md.

    The functions below are called from one thread (the ventilator's owner);
    they are not thread-safe among themselves. Submit hands a task to the
    actor through a queue in memory, not a message per task: a burst of
    submits wakes the actor at most once, and the actor takes every task
    submitted so far in one go.

    Spool-backed ventilator (opts.spool_dir, reliable mode only). The
    open, every task and the close of each batch are appended to a spool
    (zkit_spool.h) by the caller's thread before the call returns success:
    accepted = in the spool, as durable as spool_fsync makes it ("always":
    one fdatasync per call, so a crash of the machine loses no accepted task;
    "never" or "interval:MS" trade that for speed, and a crash of the process
    still loses nothing). A task is acknowledged in the spool when it is
    retired (DONE, or COMPLETE from the sink) or when its dead letter is
    confirmed by the sink; a batch's open and close records when the batch is
    complete. zkit_ventilator_new on a spool that holds an unfinished batch
    resumes it: same name, same total (a batch never closed is closed with
    the tasks it has, its total being the highest task seq submitted), the
    tasks not retired re-queued with the same seqs and ids. The batch is then
    the last batch: zkit_ventilator_report names it and zkit_ventilator_wait
    waits for it; tasks retired before the restart count as done. The sink
    identifies results by (batch, task seq) and drops those it has already
    stored, so a task re-run after a restart is stored once. The record
    format is in docs/pipeline-protocol.md.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_VENTILATOR_H_INCLUDED
#define ZKIT_VENTILATOR_H_INCLUDED

#include "zkit_batch.h"
#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_ventilator_t zkit_ventilator_t;

typedef struct {
    const char *bind;         /* endpoint(s) workers connect to, comma-separated; required */
    const char *sink;         /* the sink's endpoint: batch totals and dead letters go there;
                                 required in reliable mode, optional in fast mode         */
    bool fast;                /* fast mode (PUSH, at most once) instead of reliable        */
    const char *name;         /* meta src of the tasks; NULL = "ventilator-<pid>"          */
    uint32_t max_attempts;    /* attempts before a task is dead-lettered (0 = no limit) */
    uint32_t heartbeat_ms;    /* heartbeat interval                                   */
    uint32_t liveness;        /* missed heartbeats before a worker is presumed dead   */
    uint32_t task_timeout_ms; /* re-issue an attempt not done in this time (0 = off)  */
    uint32_t max_pending;     /* tasks held at once; submit blocks beyond it (0 = no limit) */
    const char *spool_dir;    /* reliable mode: keep batches and tasks in a spool in this
                                 directory, so a ventilator restarted on it resumes them
                                 (see "Spool-backed ventilator" below); NULL = memory only */
    const char *spool_fsync;  /* the spool's fsync policy, spelled as for the CLI:
                                 "always" (NULL), "never" or "interval:MS"              */
    zkit_ops_opts_t ops;      /* control endpoint and security (zkit_library.h) */
} zkit_ventilator_opts_t;

#define ZKIT_VENTILATOR_OPTS_DEFAULT                                                               \
    {                                                                                              \
        .bind = NULL, .sink = NULL, .fast = false, .name = NULL, .max_attempts = 5,                \
        .heartbeat_ms = 1000, .liveness = 3, .task_timeout_ms = 0, .max_pending = 0,               \
        .spool_dir = NULL, .spool_fsync = NULL                                                     \
    }

/*  Starts a ventilator. Returns only after its sockets are bound and connected;
    returns NULL with errno set (EINVAL for bad options, spool_dir in fast mode
    or a bad spool_fsync; the bind's error; the spool's, see zkit_spool_new,
    EBUSY when another ventilator holds the spool) and a log line naming the
    endpoint or the directory when that failed. With a spool, an unfinished
    batch in it is resumed (see above).                                        */
ZKIT_EXPORT zkit_ventilator_t *zkit_ventilator_new(const zkit_ventilator_opts_t *opts);

/*  Stops the ventilator and nulls *self_p; safe on NULL. Tasks not yet retired
    are abandoned: call zkit_ventilator_wait first to finish a batch. With a
    spool they stay in it, and the next ventilator on it resumes them.        */
ZKIT_EXPORT void zkit_ventilator_destroy(zkit_ventilator_t **self_p);

/*  Opens a new batch named name (1 to ZKIT_BATCH_NAME_MAX bytes of printable
    ASCII other than space; NULL = a generated name). The previous batch must
    be closed; its tasks still running go on. Returns 0, or -1 with errno
    EINVAL (bad name), EBUSY (a batch is open), or (spool) the error of
    zkit_spool_append.                                                         */
ZKIT_EXPORT int zkit_ventilator_open(zkit_ventilator_t *self, const char *name);

/*  Adds a task (its body is copied) to the open batch; its seq is its number
    in the batch, from 1. Blocks while max_pending tasks are held (a task is
    held from its submit until it is retired, dead-lettered or, fast mode,
    handed to the socket). Returns 0,
    or -1 with errno EINVAL (no open batch), EMSGSIZE (body above 16 MiB less
    4 KiB), E2BIG (the batch has ZKIT_BATCH_TASKS_MAX tasks), ENOMEM, EINTR
    (a signal arrived while blocked: zsys_interrupted), ECANCELED when the
    ventilator stopped, or (spool) the error of zkit_spool_append; the task is
    then not submitted and the next one gets the same seq. A task submitted is held until retired or
   dead- lettered (fast mode: until handed to the socket).                          */
ZKIT_EXPORT int zkit_ventilator_submit(zkit_ventilator_t *self, const void *body, size_t size);

/*  Closes the open batch: its total is now known and is announced to the sink.
    Returns 0, or -1 with errno EINVAL when no batch is open, or (spool) the
    error of zkit_spool_append, in which case the batch stays open.            */
ZKIT_EXPORT int zkit_ventilator_close(zkit_ventilator_t *self);

/*  Waits until the last batch, closed, is complete or timeout_ms passes (-1 =
    no limit). Complete means: reliable mode, every task retired or dead-
    lettered and the sink has confirmed the batch's total and every dead
    letter; fast mode, every task handed to the socket. Fills *report (may be
    NULL). Returns 0 when complete, -1 with errno ETIMEDOUT, EINVAL (no batch,
    or the batch is still open), EINTR when interrupted by a signal, or
    ECANCELED when the ventilator stopped.                                     */
ZKIT_EXPORT int zkit_ventilator_wait(zkit_ventilator_t *self, int timeout_ms,
                                     zkit_batch_report_t *report);

/*  The last batch's state now. Returns 0, or -1 with errno ECANCELED.        */
ZKIT_EXPORT int zkit_ventilator_report(zkit_ventilator_t *self, zkit_batch_report_t *report);

/*  The bound endpoint (resolved: "tcp://127.0.0.1:41234" for a ':*' bind), as
    a string owned by the ventilator. NULL if unknown.                          */
ZKIT_EXPORT const char *zkit_ventilator_endpoint(zkit_ventilator_t *self);

/*  The control endpoint (opts.ops.control), resolved ("tcp://127.0.0.1:41234"
    for a ':*' bind), as a string owned by the ventilator and valid until
    destroy; NULL when it has none. The endpoint answers STATS (metrics in
    docs/pipeline-protocol.md, section 8), PING, and PAUSE/RESUME: paused, no
    task is handed out (tasks stay queued; submit, results and heartbeats go
    on) until RESUME.                                                         */
ZKIT_EXPORT const char *zkit_ventilator_control(zkit_ventilator_t *self);

#ifdef __cplusplus
}
#endif

#endif
