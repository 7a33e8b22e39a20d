/*  zkit_publisher.h: publishes envelopes on topics, numbered so that loss is
    visible, and keeps the last ones so that loss is recoverable.

    A czmq actor owning an XPUB socket (publisher side of PUB/SUB) and, when
    asked, a ROUTER "replay endpoint". Every message is two frames, the topic
    then the envelope; the publisher sets the envelope's meta src (its name)
    and seq (1, 2, 3, ... across all its topics: one stream per publisher),
    and two hdr keys: "zkit-epoch" (its start time in microseconds, so a
    subscriber tells a restart from a replay) and "zkit-replay" (where the
    replay endpoint is, when there is one).

    Replay: the last `replay_capacity` messages (and at most `replay_bytes`
    bytes) are kept in memory; a subscriber that missed some asks for them
    (FETCH) and gets the original envelope bytes back, and one that heard
    nothing for a while asks how far the stream has got (PROBE). Last-value cache: with
    `lvc`, the newest message of every topic is kept and a new subscriber
    asks for them (SNAPSHOT) over the same endpoint; only the asker gets
    them. Protocol: docs/pubsub-protocol.md.

    Replay spool (replay_spool_dir): every message is also appended to a
    spool (zkit_spool.h) on disk, synced once per burst the publisher's
    thread handles, and kept by the spool's retention (replay_spool_bytes,
    replay_spool_age_ms) rather than by replay_capacity. FETCH is served from
    it for what the ring in memory no longer holds. A publisher started on a
    spool whose newest record is of a stream of the same name (and of
    opts.epoch, when that is not 0) keeps that stream's epoch and goes on
    with the seq after that record, so its subscribers see no restart and
    can fetch what was published before it. A record the spool lost (a crash
    of the machine within a burst not yet synced) makes the restarted stream
    reuse its seq: use the spool where the process, not the machine, is what
    fails, or set opts.epoch to a new value after a machine crash.

    Like libzmq's PUB, the publisher never blocks on a slow subscriber: the
    subscriber's queue overflows and it loses messages (then recovers them
    from the replay buffer). With `nodrop` it blocks instead, and the
    slowest subscriber sets the pace for all.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBLISHER_H_INCLUDED
#define ZKIT_PUBLISHER_H_INCLUDED

#include "zkit_envelope.h"
#include "zkit_library.h"
#include "zkit_subscriber.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_publisher_t zkit_publisher_t;

/*  A subscription change the XPUB reports: subscribed (true) or not, and
    the prefix bytes. Called on the publisher's thread; it must not call the
    publisher. `zkit publisher` uses it to print them.                      */
typedef void(zkit_subscription_fn)(bool subscribed, const void *prefix, size_t size, void *arg);

typedef struct {
    const char *name;                      /* meta src: the stream's name, stable across restarts;
                                              required, 1..ZKIT_SRC_MAX bytes                     */
    const char *bind;                      /* endpoint(s) the XPUB binds, comma-separated      */
    const char *connect;                   /* endpoint(s) it connects to (a forwarder's frontend) */
    const char *replay_bind;               /* ROUTER replay endpoint(s); NULL: no replay */
    const char *replay_announce;           /* what hdr zkit-replay says; NULL: the first
                                              replay endpoint as bound (set it when
                                              binding a wildcard address)              */
    size_t replay_capacity;                /* messages kept for replay (>= 1)          */
    size_t replay_bytes;                   /* bytes of frames kept for replay (>= 1)    */
    uint32_t replay_batch;                 /* most messages one FETCH answer carries    */
    bool lvc;                              /* keep each topic's last value for SNAPSHOT */
    size_t lvc_max_topics;                 /* topics the cache holds; newer ones are
                                              not cached (counted)                     */
    bool nodrop;                           /* block on a full subscriber queue instead of
                                              dropping for it (ZMQ_XPUB_NODROP)         */
    int sndhwm;                            /* per-subscriber queue, messages (0: none)  */
    int linger_ms;                         /* how long destroy waits to flush (-1: ever) */
    uint64_t epoch;                        /* 0: now, in microseconds since the epoch    */
    const char *replay_spool_dir;          /* also keep the replay buffer in a spool
                                              here (needs replay_bind); NULL: memory
                                              only. See "Replay spool" above           */
    uint64_t replay_spool_bytes;           /* the spool keeps this many bytes (>= 1) */
    uint64_t replay_spool_age_ms;          /* and drops records older (0: no limit) */
    zkit_subscription_fn *on_subscription; /* NULL: not reported             */
    void *subscription_arg;
    zkit_ops_opts_t ops; /* control endpoint and security (zkit_library.h) */
} zkit_publisher_opts_t;

#define ZKIT_PUBLISHER_OPTS_DEFAULT                                                                \
    {                                                                                              \
        .name = NULL, .bind = NULL, .connect = NULL, .replay_bind = NULL, .replay_announce = NULL, \
        .replay_capacity = 100000, .replay_bytes = 64u * 1024 * 1024, .replay_batch = 1000,        \
        .lvc = false, .lvc_max_topics = 10000, .nodrop = false, .sndhwm = 1000,                    \
        .linger_ms = 30000, .epoch = 0, .replay_spool_dir = NULL,                                  \
        .replay_spool_bytes = 256u * 1024 * 1024, .replay_spool_age_ms = 0,                        \
        .on_subscription = NULL, .subscription_arg = NULL                                          \
    }

typedef struct {
    uint64_t published;    /* messages sent on the XPUB                      */
    uint64_t bytes;        /* their topic + envelope bytes                   */
    uint64_t last_seq;     /* newest seq handed out                          */
    uint64_t replay_first; /* oldest seq the replay buffer holds             */
    uint64_t replay_count; /* messages it holds                              */
    uint64_t replay_bytes; /* their bytes                                    */
    uint64_t replay_evicted;
    uint64_t fetches;       /* FETCH requests answered                        */
    uint64_t replayed;      /* REPLAY messages sent                           */
    uint64_t replay_failed; /* answers cut short: the asker's queue was full  */
    uint64_t snapshots;     /* SNAPSHOT requests answered                     */
    uint64_t probes;        /* PROBE requests answered                        */
    uint64_t lvc_topics;    /* topics in the last-value cache                 */
    uint64_t lvc_refused;   /* messages not cached: lvc_max_topics reached    */
    uint64_t subscribe;     /* subscription messages from the XPUB            */
    uint64_t unsubscribe;
    uint64_t bad;               /* replay requests dropped as malformed            */
    uint64_t bad_subscriptions; /* messages read from the XPUB that are not a
                                   single-frame subscribe/unsubscribe: dropped */
    uint64_t prefixes;          /* subscription prefixes held now (at most
                                   ZKIT_PUBLISHER_PREFIXES_MAX are tracked for
                                   zkit_publisher_wait_subscriber)            */
    uint64_t paused;            /* 1 while PAUSEd (control endpoint), else 0 */
} zkit_publisher_stats_t;

/*  Subscription prefixes a publisher remembers for wait_subscriber; more
    (a hostile peer subscribing to everything) are not remembered, and a
    prefix longer than ZKIT_TOPIC_MAX never is (it matches no topic).      */
#define ZKIT_PUBLISHER_PREFIXES_MAX 10000

/*  Starts a publisher. Returns after every bind succeeded; NULL with errno
    set (EINVAL for bad options; the error of zkit_spool_new for the replay
    spool, EBUSY when another publisher holds it; the errors of the ops
    options, zkit_library.h) and a log line otherwise. The bound sockets
    (XPUB, replay ROUTER) are CURVE servers and a connected XPUB a CURVE
    client when opts.ops says so.                                           */
ZKIT_EXPORT zkit_publisher_t *zkit_publisher_new(const zkit_publisher_opts_t *opts);

/*  Stops the publisher and nulls *self_p; safe on NULL. Every message a send
    call accepted is handed to the XPUB first, which then has linger_ms to
    deliver it.                                                              */
ZKIT_EXPORT void zkit_publisher_destroy(zkit_publisher_t **self_p);

/*  Publishes *env_p on topic (a C string, at most ZKIT_TOPIC_MAX bytes).
    Sets the envelope's seq, meta src and the hdr keys zkit-epoch and
    zkit-replay; keeps its id, ts, body and other meta. On success returns 0,
    destroys the envelope and nulls *env_p. On failure returns -1 with errno
    EINVAL, ENOMEM, EAGAIN (flags ZMQ_DONTWAIT and the actor is behind) or
    EINTR (a signal arrived while waiting for room), and the caller still
    owns the envelope (with those fields set); the seq is not used up.
    Not thread-safe: one thread at a time sends on a publisher.             */
ZKIT_EXPORT int zkit_publisher_send(zkit_publisher_t *self, const char *topic,
                                    zkit_envelope_t **env_p, int flags);

/*  Publishes size bytes as the body of a fresh envelope (new id, ts now) on
    topic. Returns 0, or -1 as zkit_publisher_send. Reuses one envelope, so
    it allocates nothing per message in steady state.                       */
ZKIT_EXPORT int zkit_publisher_publish(zkit_publisher_t *self, const char *topic, const void *body,
                                       size_t size, int flags);

/*  Waits until some subscriber (directly, or through forwarders) has a
    subscription that matches topic, so that what is published next is not
    lost to the slow-joiner race. timeout_ms -1 waits for ever. Returns 0, or
    -1 with errno ETIMEDOUT, EINTR (a signal) or ECANCELED.                  */
ZKIT_EXPORT int zkit_publisher_wait_subscriber(zkit_publisher_t *self, const char *topic,
                                               int timeout_ms);

/*  Fills *stats after the actor has handled every message sent so far (a
    nodrop publisher blocked by a subscriber may still hold some). Returns
    0, or -1 with errno ECANCELED.                                            */
ZKIT_EXPORT int zkit_publisher_stats(zkit_publisher_t *self, zkit_publisher_stats_t *stats);

/*  The name, the epoch, the first bound data endpoint and the announced
    replay endpoint (resolved: a ':*' port reads as the real one), owned by
    the publisher. The endpoints are NULL when there is none.               */
ZKIT_EXPORT const char *zkit_publisher_name(zkit_publisher_t *self);
ZKIT_EXPORT uint64_t zkit_publisher_epoch(zkit_publisher_t *self);
ZKIT_EXPORT const char *zkit_publisher_endpoint(zkit_publisher_t *self);
ZKIT_EXPORT const char *zkit_publisher_replay_endpoint(zkit_publisher_t *self);

/*  The control endpoint (opts.ops.control) as bound, resolved, owned by the
    publisher; NULL when there is none. It answers STATS (every field of
    zkit_publisher_stats_t), PING, PAUSE and RESUME: a paused publisher
    stops taking messages from its application (sends wait, or fail with
    EAGAIN under ZMQ_DONTWAIT, once the hand-over queue of 10000 is full)
    and goes on answering replay requests (docs/pubsub-protocol.md, 9.2). */
ZKIT_EXPORT const char *zkit_publisher_control(zkit_publisher_t *self);

#ifdef __cplusplus
}
#endif

#endif
