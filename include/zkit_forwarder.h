/*  zkit_forwarder.h: the XSUB/XPUB device between publishers and subscribers.

    A czmq actor. Publishers reach the frontend (XSUB), subscribers the
    backend (XPUB); messages flow front to back untouched (the device never
    decodes what it only forwards), subscriptions flow back to front. A
    forwarder's backend can feed another forwarder's frontend, so fan-out
    can be built as a tree across hosts.

    What happens when a subscriber cannot keep up is a choice, per forwarder,
    applied to every subscriber alike (docs/pubsub-protocol.md, section 6):

      DROP        (default) the full subscriber misses messages; the others
                  are not slowed and miss nothing. The forwarder counts each
                  time it found a subscriber queue full (drops_hwm); the
                  subscriber's gap detector counts exactly what it missed and
                  fetches it back from the publisher.
      DISCONNECT  as DROP, and a subscriber whose queue stays full for
                  laggard_ms is disconnected (its TCP connection shut down):
                  it reconnects, resubscribes and recovers through replay,
                  and holds no memory here meanwhile. Linux, tcp and ipc.
      NODROP      nothing is dropped: the forwarder waits for the slowest
                  subscriber (ZMQ_XPUB_NODROP, blocking send). One stalled
                  subscriber stalls every other one, then the publishers
                  (which drop unless they are nodrop too).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_FORWARDER_H_INCLUDED
#define ZKIT_FORWARDER_H_INCLUDED

#include <zmq.h>

#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_forwarder_t zkit_forwarder_t;

typedef enum {
    ZKIT_FORWARDER_DROP = 0,
    ZKIT_FORWARDER_DISCONNECT,
    ZKIT_FORWARDER_NODROP
} zkit_forwarder_policy_t;

typedef struct {
    const char *frontend;         /* XSUB binds here: publishers connect        */
    const char *frontend_connect; /* XSUB connects here: publishers that bind, or
                                     an upstream forwarder's backend            */
    const char *backend;          /* XPUB binds here: subscribers connect       */
    const char *backend_connect;  /* XPUB connects here                         */
    zkit_forwarder_policy_t policy;
    int hwm;              /* messages queued per subscriber (and per publisher
                             on the frontend); 0 = no limit                */
    uint32_t laggard_ms;  /* DISCONNECT: how long a queue may stay full     */
    size_t laggard_bytes; /* DISCONNECT: unsent bytes in the kernel that mark
                             a connection as not reading                    */
    const char *tap;      /* capture endpoint: a copy of every message       */
    bool tap_connect;     /* connect the tap (default: bind it)             */
    int tap_type;         /* ZMQ_PUB (default) or ZMQ_PUSH                  */
    int tap_hwm;          /* copies queued for the tap; past it they are
                             dropped (tap_drops), never waited for          */
    int linger_ms;        /* how long the backend may flush at stop          */
    zkit_ops_opts_t ops;  /* control endpoint and security (zkit_library.h) */
} zkit_forwarder_opts_t;

#define ZKIT_FORWARDER_OPTS_DEFAULT                                                                \
    {                                                                                              \
        .frontend = NULL, .frontend_connect = NULL, .backend = NULL, .backend_connect = NULL,      \
        .policy = ZKIT_FORWARDER_DROP, .hwm = 1000, .laggard_ms = 2000,                            \
        .laggard_bytes = 64 * 1024, .tap = NULL, .tap_connect = false, .tap_type = ZMQ_PUB,        \
        .tap_hwm = 10000, .linger_ms = 30000                                                       \
    }

typedef struct {
    uint64_t msgs_in;  /* messages read from the frontend, malformed ones (in
                          bad_frames) too: what the wire carried             */
    uint64_t bytes_in; /* their bytes, every frame                            */
    uint64_t msgs_out; /* messages handed to the backend (once, whatever the
                          number of subscribers)                           */
    uint64_t bytes_out;
    uint64_t drops_hwm;      /* DROP, DISCONNECT: times a subscriber's queue was
                                found full and a message dropped for it. libzmq
                                then skips that subscriber until its queue drains
                                to half: those further misses are counted by the
                                subscriber's gap detector, not here              */
    uint64_t drops_shutdown; /* NODROP: a message held when the device stopped */
    uint64_t nodrop_waits;   /* NODROP: sends that had to wait for room       */
    uint64_t laggards;       /* DISCONNECT: subscribers disconnected          */
    uint64_t subscribe;      /* subscribe messages from the backend           */
    uint64_t unsubscribe;
    uint64_t upstream;     /* messages sent to the frontend (subscriptions)  */
    uint64_t tap_msgs;     /* messages copied to the tap                    */
    uint64_t tap_drops;    /* copies the tap could not take                 */
    uint64_t connections;  /* DISCONNECT: backend connections watched now  */
    uint64_t bad_frames;   /* frontend messages of another frame count than
                              two ([topic][envelope]): dropped (counted in
                              msgs_in too)                                   */
    uint64_t bad_upstream; /* backend messages that are not subscriptions
                              (several frames, empty, first byte not 0 or
                              1): dropped, never passed upstream            */
    uint64_t paused;       /* 1 while PAUSEd (control endpoint), else 0      */
} zkit_forwarder_stats_t;

/*  Starts a forwarder. Returns after every bind and connect was accepted;
    NULL with errno set (EINVAL for bad options, ENOTSUP for DISCONNECT where
    it cannot work, the errors of the ops options: zkit_library.h) and a log
    line otherwise. Bound sockets (frontend, backend, tap) are CURVE servers
    and connected ones CURVE clients when opts.ops says so.                  */
ZKIT_EXPORT zkit_forwarder_t *zkit_forwarder_new(const zkit_forwarder_opts_t *opts);

/*  Stops the forwarder and nulls *self_p; safe on NULL. The backend keeps
    linger_ms to deliver what is queued.                                     */
ZKIT_EXPORT void zkit_forwarder_destroy(zkit_forwarder_t **self_p);

/*  Fills *stats (a STATS command over the actor pipe). Returns 0, or -1 with
    errno ECANCELED.                                                         */
ZKIT_EXPORT int zkit_forwarder_stats(zkit_forwarder_t *self, zkit_forwarder_stats_t *stats);

/*  The last endpoint the frontend, backend and tap bound, resolved (a ':*'
    port reads as the real one), owned by the forwarder; NULL when none.    */
ZKIT_EXPORT const char *zkit_forwarder_frontend(zkit_forwarder_t *self);
ZKIT_EXPORT const char *zkit_forwarder_backend(zkit_forwarder_t *self);
ZKIT_EXPORT const char *zkit_forwarder_tap(zkit_forwarder_t *self);

/*  The control endpoint (opts.ops.control) as bound, resolved, owned by the
    forwarder; NULL when there is none. It answers STATS (every counter above,
    docs/pubsub-protocol.md section 8), PING, and PAUSE/RESUME: a paused
    forwarder stops reading its frontend (see the protocol document).       */
ZKIT_EXPORT const char *zkit_forwarder_control(zkit_forwarder_t *self);

/*  "drop", "disconnect", "nodrop"; and back (0, or -1 for an unknown name). */
ZKIT_EXPORT const char *zkit_forwarder_policy_name(zkit_forwarder_policy_t policy);
ZKIT_EXPORT int zkit_forwarder_policy_parse(const char *name, zkit_forwarder_policy_t *policy);

#ifdef __cplusplus
}
#endif

#endif
