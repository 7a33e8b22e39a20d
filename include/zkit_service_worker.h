/*  zkit_service_worker.h: serves requests from a zkit balancer.

    Connects to the balancer's backend, says READY with its credit (the
    number of requests it may hold at once), and runs a handler for each
    request on its handler threads, so a long request never silences the
    heartbeat. Heartbeats go both ways; when nothing has come from the
    balancer for heartbeat x liveness ms the worker presumes it dead, drops
    its socket and reconnects after a delay that doubles from reconnect_ms up
    to reconnect_max_ms, then says READY again. Protocol:
    docs/balancer-protocol.md (a zkit worker is a Paranoid Pirate worker with
    credit and envelopes).

    A czmq actor: one thread owns the socket; handler threads only run
    handlers.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SERVICE_WORKER_H_INCLUDED
#define ZKIT_SERVICE_WORKER_H_INCLUDED

#include "zkit_envelope.h"
#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_service_worker_t zkit_service_worker_t;

/*  Answers one request, on a handler thread. request is read-only (its id is
    the correlation id; meta att is the attempt). reply is a fresh envelope
    whose corr is already the request's id and src the worker's name: set its
    body and any meta. Return 0 to send the reply, or -1 to give the request
    back: the balancer retries it on another worker, and after max_attempts
    failed attempts answers the client with an error. Must be thread-safe
    when threads > 1.                                                         */
typedef int(zkit_service_handler_fn)(const zkit_envelope_t *request, zkit_envelope_t *reply,
                                     void *arg);

typedef struct {
    const char *connect;              /* the balancer's backend endpoint(s); required        */
    const char *name;                 /* meta src of replies; NULL = "worker-<pid>-<n>"      */
    uint32_t credit;                  /* requests held at once (1..1000)                     */
    uint32_t threads;                 /* handler threads (1..credit); 0 = credit             */
    uint32_t heartbeat_ms;            /* heartbeat interval (1..3600000)                     */
    uint32_t liveness;                /* missed heartbeats before the balancer is presumed
                                         dead (1..100)                                       */
    uint32_t reconnect_ms;            /* first reconnect delay                               */
    uint32_t reconnect_max_ms;        /* the delay never exceeds this                        */
    zkit_service_handler_fn *handler; /* required                                   */
    void *handler_arg;
    zkit_ops_opts_t ops; /* control endpoint and security (zkit_library.h) */
} zkit_service_worker_opts_t;

#define ZKIT_SERVICE_WORKER_OPTS_DEFAULT                                                           \
    {                                                                                              \
        .connect = NULL, .name = NULL, .credit = 1, .threads = 0, .heartbeat_ms = 1000,            \
        .liveness = 3, .reconnect_ms = 250, .reconnect_max_ms = 8000, .handler = NULL,             \
        .handler_arg = NULL                                                                        \
    }

/*  Counters of one worker.                                                  */
typedef struct {
    uint64_t requests;   /* requests received                                  */
    uint64_t replies;    /* handler returned 0: reply sent                     */
    uint64_t failures;   /* handler returned -1: request given back (NACK)     */
    uint64_t reconnects; /* times the balancer was presumed dead               */
    uint64_t bad;        /* messages from the balancer that were dropped       */
} zkit_service_worker_stats_t;

/*  Starts a worker. Returns after its socket is created and connected (a
    connect succeeds before the balancer exists) and READY is queued, and
    after the control endpoint is bound when opts->ops.control is set; NULL
    with errno EINVAL for bad options, the connect's or the control bind's
    error, or an error of the security options as zkit_ops_opts_t lists
    them, with a log line.

    opts->ops: the connection to the balancer is a CURVE client with
    curve_secret and curve_server (the balancer's public certificate), on
    the first connect and on every reconnect. The control endpoint answers
    STATS (component "service_worker": every field of
    zkit_service_worker_stats_t, whether it is connected, its credit, the
    handlers running and the requests waiting, and the balancer endpoint as
    its one peer) and PING; PAUSE and RESUME answer "ERROR not supported" (a
    worker cannot take back credit it gave). docs/balancer-protocol.md lists
    the metrics.                                                              */
ZKIT_EXPORT zkit_service_worker_t *zkit_service_worker_new(const zkit_service_worker_opts_t *opts);

/*  Stops the worker: no new request starts, running handlers finish and
    their replies are sent, requests held but not started are given back, and
    the balancer is told DISCONNECT so it retries them elsewhere at once.
    Nulls *self_p; safe on NULL. Waits for running handlers to return.        */
ZKIT_EXPORT void zkit_service_worker_destroy(zkit_service_worker_t **self_p);

/*  The control endpoint as bound ("tcp://127.0.0.1:41234" for a ':*' bind;
    the last one when several were given), owned by the worker, or NULL when
    opts->ops.control was not set (or self is NULL).                         */
ZKIT_EXPORT const char *zkit_service_worker_control(zkit_service_worker_t *self);

/*  Fills *stats. Returns 0, or -1 with errno ECANCELED when it stopped.      */
ZKIT_EXPORT int zkit_service_worker_stats(zkit_service_worker_t *self,
                                          zkit_service_worker_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
