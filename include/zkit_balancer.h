/*  zkit_balancer.h: the load-balancing device.

    Clients send requests to the frontend (a ROUTER), workers take them from
    the backend (a ROUTER): each request goes to the least recently used
    worker that said it is ready and has credit left, replies go back to the
    client that asked. Workers and the balancer heartbeat each other; a worker
    silent for heartbeat x liveness is presumed dead and the requests it held
    go to another worker. A request that fails max_attempts times (its worker
    died, it timed out, or a zkit worker gave it back) or outlives its ttl is
    answered with an error and recorded in the dead-letter store: never
    dropped silently.

    It speaks the Paranoid Pirate Protocol (ZeroMQ RFC 6) to workers and
    plain request-reply to clients, so Guide-style PPP workers and REQ
    clients work unmodified; zkit_service_worker and zkit_client add credit,
    envelopes and correlation ids on top. Protocol: docs/balancer-protocol.md.

    A czmq actor: one thread owns both sockets and the dispatch state
    (patterns/core/dispatcher.h). It holds requests in memory: requests held
    when it is destroyed are counted, logged and abandoned, and the clients'
    retries bring them to the next balancer.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BALANCER_H_INCLUDED
#define ZKIT_BALANCER_H_INCLUDED

#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_balancer_t zkit_balancer_t;

typedef struct {
    const char *frontend;        /* endpoint(s) clients connect to, comma-separated; required */
    const char *backend;         /* endpoint(s) workers connect to; required                  */
    const char *name;            /* in logs and in envelopes it makes; NULL = "balancer"       */
    uint32_t heartbeat_ms;       /* heartbeat interval, both directions (1..3600000)           */
    uint32_t liveness;           /* missed heartbeats before a worker is presumed dead (1..100) */
    uint32_t max_attempts;       /* attempts before a request is dead-lettered; 0 = no limit   */
    uint32_t attempt_timeout_ms; /* an attempt unanswered this long fails; 0 = off          */
    uint32_t ttl_ms;             /* ttl of requests that carry none; 0 = none                  */
    uint32_t max_requests;       /* requests held at once; beyond it the frontend is not read  */
    const char *dead_letter_dir; /* directory of the dead-letter file; NULL = log only      */
    bool verbose;                /* log worker arrivals and departures (zsys_info)            */
    zkit_ops_opts_t ops;         /* control endpoint and security (zkit_library.h) */
} zkit_balancer_opts_t;

#define ZKIT_BALANCER_OPTS_DEFAULT                                                                 \
    {                                                                                              \
        .frontend = NULL, .backend = NULL, .name = NULL, .heartbeat_ms = 1000, .liveness = 3,      \
        .max_attempts = 5, .attempt_timeout_ms = 0, .ttl_ms = 0, .max_requests = 100000,           \
        .dead_letter_dir = NULL, .verbose = false                                                  \
    }

/*  Why a message from a peer was dropped. Each has a counter in the stats.  */
typedef enum {
    ZKIT_BALANCER_BAD_FRAMES = 0, /* wrong number of frames for what it is      */
    ZKIT_BALANCER_BAD_COMMAND,    /* a command frame this protocol does not know */
    ZKIT_BALANCER_BAD_FIELD,      /* a malformed credit or request handle       */
    ZKIT_BALANCER_BAD_ROUTE,      /* no empty delimiter, or too many addresses  */
    ZKIT_BALANCER_BAD_ENVELOPE,   /* a zkit worker's reply is not an envelope   */
    ZKIT_BALANCER_BAD_REASONS_
} zkit_balancer_bad_t;

/*  Counters of one balancer. Totals only grow; the last three are gauges.   */
typedef struct {
    uint64_t requests;           /* requests accepted from clients                          */
    uint64_t duplicates;         /* resends of a request still held (same envelope id)      */
    uint64_t dispatched;         /* attempts sent to workers                                */
    uint64_t replies;            /* replies sent to clients                                 */
    uint64_t unroutable;         /* replies and errors whose client was gone or not reading */
    uint64_t late_replies;       /* replies for requests already answered: dropped          */
    uint64_t requeued;           /* failed attempts put back in the queue                   */
    uint64_t nacks;              /* attempts a zkit worker gave back                        */
    uint64_t dead_letters;       /* requests given up on (max attempts or ttl)              */
    uint64_t dead_letter_errors; /* dead letters the store failed to write (still logged) */
    uint64_t overloaded;         /* requests refused with an error: max_requests reached    */
    uint64_t workers_ready;      /* READY received                                          */
    uint64_t workers_expired;    /* workers presumed dead by liveness                       */
    uint64_t workers_gone;       /* workers that said DISCONNECT or could not be reached    */
    uint64_t unknown_worker;     /* heartbeats and commands from workers not registered     */
    uint64_t bad_frontend[ZKIT_BALANCER_BAD_REASONS_]; /* dropped client messages        */
    uint64_t bad_backend[ZKIT_BALANCER_BAD_REASONS_];  /* dropped worker messages        */
    uint64_t workers;   /* gauge: workers registered now                           */
    uint64_t queued;    /* gauge: requests waiting for a worker                    */
    uint64_t in_flight; /* gauge: requests a worker holds                          */
} zkit_balancer_stats_t;

/*  Starts a balancer. Returns only after both sockets (and the control
    endpoint, when opts->ops.control is set) are bound; returns NULL with
    errno set (EINVAL for bad options, the bind's error, the error opening
    the dead-letter directory, or an error of the security options as
    zkit_ops_opts_t lists them) and a log line when that failed.

    opts->ops: the frontend and the backend are both bound sockets, so with
    curve_secret and curve_allow every client and every worker must be a
    CURVE client with an allowed key (a peer without one never reaches the
    balancer); the IP lists apply to both. The control endpoint answers
    STATS (every field of zkit_balancer_stats_t, the registered workers as
    peers), PING, and PAUSE/RESUME: while paused nothing is dispatched, the
    frontend keeps taking requests up to max_requests (they queue), workers
    keep heartbeating and replies to requests already dispatched still go
    back; RESUME dispatches what queued meanwhile. Liveness, attempt
    timeouts and ttls keep running while paused, so a request with a ttl
    can expire in the queue. docs/balancer-protocol.md lists the metrics.   */
ZKIT_EXPORT zkit_balancer_t *zkit_balancer_new(const zkit_balancer_opts_t *opts);

/*  Stops the balancer, closes its sockets (giving queued replies up to a
    second to leave) and nulls *self_p; safe on NULL. Requests still held are
    abandoned with a log line counting them.                                  */
ZKIT_EXPORT void zkit_balancer_destroy(zkit_balancer_t **self_p);

/*  The bound frontend and backend endpoints, resolved ("tcp://127.0.0.1:41234"
    for a ':*' bind; the last one when several were given), as strings owned
    by the balancer.                                                          */
ZKIT_EXPORT const char *zkit_balancer_frontend(zkit_balancer_t *self);
ZKIT_EXPORT const char *zkit_balancer_backend(zkit_balancer_t *self);

/*  The control endpoint as bound ("tcp://127.0.0.1:41234" for a ':*' bind;
    the last one when several were given), owned by the balancer, or NULL
    when opts->ops.control was not set (or self is NULL).                    */
ZKIT_EXPORT const char *zkit_balancer_control(zkit_balancer_t *self);

/*  Fills *stats with a consistent snapshot. Returns 0, or -1 with errno
    ECANCELED when the balancer's thread has stopped.                         */
ZKIT_EXPORT int zkit_balancer_stats(zkit_balancer_t *self, zkit_balancer_stats_t *stats);

/*  A short text for a drop reason ("wrong frame count"), or "?".            */
ZKIT_EXPORT const char *zkit_balancer_bad_name(zkit_balancer_bad_t why);

#ifdef __cplusplus
}
#endif

#endif
