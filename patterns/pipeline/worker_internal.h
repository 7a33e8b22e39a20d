/*  worker_internal.h (internal): what worker.c (construction, handler
    threads) and worker_actor.c (the socket thread) share.

    Handlers run on their own threads, window of them, each with a DEALER
    (inproc) to a ROUTER the actor polls. A job travels as a pointer: the
    actor sends a frame holding the pointer to a handler, the handler runs
    the task and sends the same pointer back. Whoever holds the pointer owns
    the job. A handler's first message is "READY"; any frame that is not a
    pointer's size tells it to stop, after the jobs queued before it.

    Fast mode with a window of 1 has no handler thread and no inproc link
    (inline_handler): the actor runs each task itself as it reads it, into
    envelopes it reuses, and sends the result straight away.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_WORKER_INTERNAL_H_INCLUDED
#define ZKIT_PIPELINE_WORKER_INTERNAL_H_INCLUDED

#include <pthread.h>

#include "core/socket.h"
#include "pipeline/actor_call.h"
#include "pipeline/pipeline.h"
#include "zkit_worker.h"

/* Routing ids of handler DEALERs: 'h' then the index, big-endian.          */
#define ZKIT__WORKER_HANDLER_RID 5

typedef struct zkit__worker_job {
    struct zkit__worker_job *next;
    zmq_msg_t task; /* the task's envelope frame */
    uint8_t task_id[ZKIT_ID_SIZE];
    uint64_t task_seq;
    /* Filled by the handler thread. */
    int rc;
    zkit_envelope_t *result; /* rc 0 */
    char reason[ZKIT__PIPELINE_REASON_MAX + 1];
    /* Reliable mode, after the handler: the RESULT frame, kept for resends. */
    zmq_msg_t encoded;
    bool has_encoded;
    int64_t resend_at;
    uint32_t sends; /* RESULT sends so far, for the give-up limit */
} zkit__worker_job_t;

typedef struct {
    pthread_t thread;
    bool started;
    zsock_t *sock; /* DEALER to the actor's ROUTER; the thread's own */
    uint8_t rid[ZKIT__WORKER_HANDLER_RID];
    zkit_task_handler_fn *handler;
    void *handler_arg;
    const char *name; /* the worker's name: meta src of results */
} zkit__worker_handler_t;

typedef struct zkit__worker_actor zkit__worker_actor_t;
struct zkit__ops_t;

/*  What the caller prepares and the actor runs with.                        */
typedef struct {
    bool fast;
    char name[ZKIT__PIPELINE_NAME_MAX + 1];
    char *connect;
    char *sink_endpoint;
    uint32_t window;
    int64_t heartbeat_ms;
    int64_t liveness;
    int64_t reconnect_ms;
    zsock_t *vent;                   /* DEALER (reliable) or PULL (fast); NULL while reconnecting */
    zsock_t *sink;                   /* DEALER (reliable) or PUSH (fast) */
    zsock_t *handlers;               /* ROUTER, inproc, to the handler threads; NULL inline */
    zkit__worker_handler_t *threads; /* window of them (none started inline) */
    bool inline_handler;             /* fast mode, window 1: the actor runs the handler */
    zkit_task_handler_fn *handler;
    void *handler_arg;
    struct zkit__ops_t *ops;     /* control endpoint and security (NULL: none);
                                    destroyed by the caller after the actor */
    zkit__worker_actor_t *actor; /* the actor's state while it runs: what the
                                    control callbacks read, on its thread    */
} zkit__worker_setup_t;

/*  Runs handler on task (decoded) into result (empty), then stamps what the
    protocol requires on the result (corr, batch, task-seq, att, src).
    Returns 0, or -1 with reason (NUL-terminated) saying why.                */
int zkit__worker_run(zkit_task_handler_fn *handler, void *handler_arg, const char *name,
                     const zkit_envelope_t *task, zkit_envelope_t *result,
                     char reason[ZKIT__PIPELINE_REASON_MAX + 1]);

/*  The handler thread's body (pthread start routine).                        */
void *zkit__worker_handler_run(void *arg);

/*  Stops and joins the started handler threads, every one of which has said
    READY, so the ROUTER can reach it. A busy one stops after its task, so
    this waits for running handlers to return.                               */
void zkit__worker_stop_handlers(zkit__worker_setup_t *setup);

/*  Frees a job and what it holds. Safe on NULL.                              */
void zkit__worker_job_free(zkit__worker_job_t *job);

/*  Creates the link to the ventilator (DEALER or PULL) with the worker's
    linger and connects it. Returns NULL with errno set and a log line.       */
zsock_t *zkit__worker_vent_socket(const zkit__worker_setup_t *setup);

/*  The actor (zactor_fn); args is the zkit__worker_setup_t, which it uses
    and whose sockets it closes, but does not free.                          */
void zkit__worker_actor(zsock_t *pipe, void *args);

#endif
