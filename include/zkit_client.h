/*  zkit_client.h: requests to a load-balanced service, with retries.

    A client sends each request in an envelope whose id is its correlation
    id, and matches replies by their meta corr: a reply to a request that is
    no longer outstanding (a late duplicate, produced by a retry) is counted
    and discarded, never returned. An attempt unanswered after timeout_ms is
    sent again, with the same id, after a backoff that doubles from
    backoff_ms up to backoff_max_ms, until retries are used up; a reply to any
    attempt completes the request. A request the balancer gave up on (dead-
    lettered after its workers failed it, expired, or refused because the
    balancer was full) completes with EREMOTEIO and the balancer's reason.
    Protocol: docs/balancer-protocol.md.

    Synchronous use: zkit_client_request. Asynchronous use: zkit_client_send
    any number of requests, then zkit_client_recv their outcomes in any order;
    retries happen while zkit_client_recv (or zkit_client_request) waits, so
    an asynchronous caller calls it regularly (a timeout of 0 only drives the
    timers). Both styles can be mixed: an outcome that arrives while waiting
    for another request is kept for zkit_client_recv.

    A client is not an actor and not thread-safe: one thread uses it, as a
    socket. It owns one DEALER socket, connected to the balancer's frontend.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_CLIENT_H_INCLUDED
#define ZKIT_CLIENT_H_INCLUDED

#include "zkit_envelope.h"
#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_client_t zkit_client_t;

typedef struct {
    const char *connect;     /* the balancer's frontend endpoint(s); required           */
    const char *name;        /* meta src of requests; NULL = "client-<pid>"             */
    uint32_t timeout_ms;     /* wait for a reply to one attempt (1..3600000)            */
    uint32_t retries;        /* attempts after the first before ETIMEDOUT (0..1000)     */
    uint32_t backoff_ms;     /* pause before the first resend; doubles per resend       */
    uint32_t backoff_max_ms; /* the pause never exceeds this                            */
    uint32_t ttl_ms;         /* meta ttl of requests that have none; 0 = none           */
    uint32_t max_pending;    /* outstanding requests; send fails with EAGAIN beyond it  */
    zkit_ops_opts_t ops;     /* control endpoint and security (zkit_library.h) */
} zkit_client_opts_t;

#define ZKIT_CLIENT_OPTS_DEFAULT                                                                   \
    {                                                                                              \
        .connect = NULL, .name = NULL, .timeout_ms = 2500, .retries = 3, .backoff_ms = 100,        \
        .backoff_max_ms = 3200, .ttl_ms = 0, .max_pending = 10000                                  \
    }

/*  The outcome of one request.                                              */
typedef struct {
    uint8_t id[ZKIT_ID_SIZE]; /* the request's id (its correlation id)            */
    int status;               /* 0, ETIMEDOUT (no reply to any attempt), or
                                 EREMOTEIO (the balancer gave up; see error)     */
    uint32_t attempts;        /* attempts this client sent                        */
    char error[96];           /* EREMOTEIO: "PEER_DIED after 3 attempts"; else "" */
    zkit_envelope_t *reply;   /* status 0: the reply, now owned by the caller;
                                 otherwise NULL                                   */
} zkit_client_result_t;

/*  Counters of one client.                                                  */
typedef struct {
    uint64_t sent;      /* requests accepted by zkit_client_send                */
    uint64_t resends;   /* attempts after the first                             */
    uint64_t replies;   /* requests completed with a reply                      */
    uint64_t failures;  /* requests completed with ETIMEDOUT or EREMOTEIO       */
    uint64_t discarded; /* replies for no outstanding request (late duplicates),
                           or that were not envelopes with a corr               */
} zkit_client_stats_t;

/*  Creates a client and connects it (a connect succeeds before the balancer
    exists). Returns NULL with errno EINVAL for bad options, the connect's
    error, or an error of the security options as zkit_ops_opts_t lists
    them, with a log line.

    opts->ops: security only. With curve_secret and curve_server (the
    balancer's public certificate) the connection is a CURVE client; a
    balancer that does not admit the key never answers, so requests time
    out (ETIMEDOUT). ops.control must be NULL (EINVAL otherwise): a client
    runs in its caller's thread, so nothing would answer a control endpoint;
    zkit_client_stats gives its counters.                                    */
ZKIT_EXPORT zkit_client_t *zkit_client_new(const zkit_client_opts_t *opts);

/*  Destroys the client and nulls *self_p; safe on NULL. Outstanding requests
    are abandoned, and outcomes not yet received are freed.                   */
ZKIT_EXPORT void zkit_client_destroy(zkit_client_t **self_p);

/*  Sends a request and waits for its outcome: returns the reply envelope
    (the caller destroys it), or NULL with errno ETIMEDOUT (no reply after
    every retry), EREMOTEIO (the balancer gave up on it; zkit_client_error
    says why), EAGAIN (max_pending reached), EINTR (a signal: the request
    stays outstanding and its outcome goes to zkit_client_recv) or ENOMEM.
    The body is copied.                                                       */
ZKIT_EXPORT zkit_envelope_t *zkit_client_request(zkit_client_t *self, const void *body,
                                                 size_t size);

/*  The balancer's reason for the last EREMOTEIO from zkit_client_request, or
    "". Valid until the next call on the client.                              */
ZKIT_EXPORT const char *zkit_client_error(zkit_client_t *self);

/*  Sends a request without waiting. Takes ownership of *request_p and nulls
    it on success; its id is the correlation id (copied to id_out when not
    NULL). The client sets meta src if absent and meta ttl from the options if
    absent; meta att is the balancer's. Returns 0, or -1 with errno EAGAIN
    (max_pending reached), EEXIST (a request with this id is outstanding) or
    ENOMEM, and the caller still owns the envelope.                           */
ZKIT_EXPORT int zkit_client_send(zkit_client_t *self, zkit_envelope_t **request_p,
                                 uint8_t id_out[ZKIT_ID_SIZE]);

/*  Waits up to timeout_ms (0: don't wait; -1: no limit) for the outcome of
    any outstanding request, resending attempts that timed out meanwhile.
    Returns 0 with *result filled (result->reply belongs to the caller), or -1
    with errno EAGAIN (nothing completed in time), ENOENT (nothing is
    outstanding, so nothing can complete) or EINTR.                           */
ZKIT_EXPORT int zkit_client_recv(zkit_client_t *self, zkit_client_result_t *result, int timeout_ms);

/*  Requests sent and not yet completed (outcomes waiting to be received are
    not counted).                                                             */
ZKIT_EXPORT size_t zkit_client_pending(zkit_client_t *self);

/*  Fills *stats. Can't fail.                                                 */
ZKIT_EXPORT void zkit_client_stats(zkit_client_t *self, zkit_client_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
