/*  zkit_subscriber.h: receives a PUB/SUB feed and makes its losses visible
    and, where the publisher still holds them, recovers them.

    A czmq actor owning a SUB socket. Every message is a topic frame plus an
    envelope; (src, seq) of the envelope numbers each publisher's stream, and
    hdr "zkit-epoch" tells a publisher's restarts apart. Per source the
    subscriber detects gaps (a seq skipped), out-of-order arrivals and
    duplicates, counts them, and reports every gap through a callback. When a
    source announces a replay endpoint (hdr "zkit-replay", or the `replay`
    option) the subscriber fetches the missing seqs from it, delivers them
    once (flagged RECOVERED), and reports exactly what the publisher no
    longer had (LOST). Protocol: docs/pubsub-protocol.md.

    What is promised, per source: every message that reaches this subscriber
    (live or replayed) is delivered to the handler at most once; every seq
    between the first one seen and the newest one seen is either delivered or
    reported in a LOST event. A source that falls silent is asked (probe_ms)
    whether it published more, so the tail of a burst is not lost unseen
    either. Messages are delivered in arrival order, so a recovered message
    comes after newer live ones.

    Gap detection counts a publisher's stream as a whole. A subscriber that
    takes only some of a publisher's topics sees the others' seqs as gaps:
    it fetches them, finds they are not for it, and delivers nothing (they
    count as filtered, not lost). That is correct but costs a round trip per
    gap: give each audience its own publisher (one src per topic family).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SUBSCRIBER_H_INCLUDED
#define ZKIT_SUBSCRIBER_H_INCLUDED

#include <sys/types.h>

#include "zkit_envelope.h"
#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZKIT_SRC_MAX       255 /* bytes of a source name (meta src)           */
#define ZKIT_TOPIC_MAX     255 /* bytes of a topic zkit publishes or replays   */
#define ZKIT_ENDPOINT_MAX  255 /* bytes of an endpoint string                  */
#define ZKIT_SUBSCRIBE_MAX 16  /* prefixes one subscriber is started with      */

typedef struct _zkit_subscriber_t zkit_subscriber_t;

/*  How a delivered message reached the subscriber.                          */
typedef enum {
    ZKIT_DELIVERY_LIVE = 0,  /* from the feed, in order                     */
    ZKIT_DELIVERY_LATE,      /* from the feed, after a gap that it fills     */
    ZKIT_DELIVERY_RECOVERED, /* fetched from the publisher's replay buffer   */
    ZKIT_DELIVERY_SNAPSHOT,  /* the publisher's last value for its topic     */
    ZKIT_DELIVERY_UNTRACKED  /* no src, seq 0, or too many sources: not
                                checked for gaps or duplicates               */
} zkit_delivery_kind_t;

/*  Where a subscriber stands in one source's stream: every seq below next
    was delivered or reported lost. Resuming from a position is at-least-once:
    messages delivered above the oldest unresolved gap come again.           */
typedef struct {
    char src[ZKIT_SRC_MAX + 1];
    uint64_t epoch;
    uint64_t next;
    char replay[ZKIT_ENDPOINT_MAX + 1]; /* "" when none is known             */
} zkit_stream_position_t;

/*  What the handler learns with each message. Pointers are valid during the
    call only.                                                                */
typedef struct {
    const char *topic; /* the topic frame, NUL-terminated (an embedded NUL
                          reads as truncated)                                */
    size_t topic_size;
    zkit_delivery_kind_t kind;
    const char *src; /* NULL when untracked                                  */
    uint64_t epoch;
    uint64_t seq;
    uint64_t resume_from; /* this source's position after this message      */
    const char *replay;   /* replay endpoint known for src, or NULL           */
} zkit_delivery_t;

/*  Called on the subscriber's thread for every message delivered. It should
    return quickly: while it runs the subscriber reads nothing, and a
    subscriber that falls behind loses messages at the publisher or the
    forwarder (then recovers them if it can). It must not call this
    subscriber's functions (they wait for the thread that is running it).   */
typedef void(zkit_message_fn)(const zkit_envelope_t *env, const zkit_delivery_t *delivery,
                              void *arg);

typedef enum {
    ZKIT_STREAM_GAP = 1,   /* [from, to] went missing                        */
    ZKIT_STREAM_RECOVERED, /* a fetch for [from, to] delivered count messages */
    ZKIT_STREAM_LOST,      /* [from, to] will never be delivered (reason);
                              to UINT64_MAX: to the end of that epoch,
                              count unknown                                   */
    ZKIT_STREAM_RESTART    /* the source restarted: epoch -> new_epoch       */
} zkit_stream_event_kind_t;

typedef enum {
    ZKIT_LOST_NONE = 0,
    ZKIT_LOST_EVICTED,   /* the publisher's replay buffer no longer holds it */
    ZKIT_LOST_NO_REPLAY, /* recovery off, or no replay endpoint is known     */
    ZKIT_LOST_TIMEOUT,   /* the replay endpoint did not answer (retries)     */
    ZKIT_LOST_RESTART,   /* the publisher restarted; its old buffer is gone  */
    ZKIT_LOST_OVERFLOW,  /* too many separate gaps at once for this source    */
    ZKIT_LOST_BAD        /* replayed, but did not decode or did not match     */
} zkit_lost_reason_t;

typedef struct {
    zkit_stream_event_kind_t kind;
    const char *src;
    uint64_t epoch;
    uint64_t from;
    uint64_t to;
    uint64_t count;            /* RECOVERED: messages delivered by the fetch    */
    zkit_lost_reason_t reason; /* LOST                                       */
    uint64_t new_epoch;        /* RESTART                                       */
} zkit_stream_event_t;

/*  Called on the subscriber's thread for every stream event. A GAP is
    always reported before the messages that fill it are delivered.         */
typedef void(zkit_stream_event_fn)(const zkit_stream_event_t *event, void *arg);

typedef struct {
    const char *connect;                  /* endpoint(s) the SUB connects to, comma-separated */
    const char *bind;                     /* endpoint(s) it binds to (publishers connect)     */
    const char *const *topics;            /* subscription prefixes; "" receives all     */
    size_t topic_count;                   /* 0..ZKIT_SUBSCRIBE_MAX                      */
    const char *replay;                   /* replay endpoint(s) for sources that announce none,
                                             and where snapshots are asked; comma-separated    */
    bool recover;                         /* fetch missing seqs (needs a replay endpoint)       */
    bool learn_replay;                    /* use the endpoint a source announces in its hdr    */
    bool snapshot;                        /* at start, ask each `replay` endpoint for the last
                                             value of every topic under the prefixes           */
    uint32_t fetch_timeout_ms;            /* a fetch not answered in this time is retried */
    uint32_t fetch_retries;               /* then its range is reported LOST (TIMEOUT)  */
    uint32_t fetch_batch;                 /* most seqs asked in one FETCH (1..10000)    */
    uint32_t probe_ms;                    /* a source silent this long is asked whether
                                             it sent anything since (the tail of a burst
                                             is otherwise lost unseen); 0 = never        */
    int rcvhwm;                           /* SUB receive high-water mark (0 = none)     */
    size_t max_sources;                   /* sources tracked; more are UNTRACKED        */
    size_t max_gaps;                      /* separate gaps per source before the oldest
                                             is given up (LOST, OVERFLOW)               */
    const zkit_stream_position_t *resume; /* positions to resume from        */
    size_t resume_count;
    zkit_message_fn *handler; /* NULL: messages are only counted           */
    void *handler_arg;
    zkit_stream_event_fn *on_event; /* NULL: events are only counted        */
    void *event_arg;
    zkit_ops_opts_t ops; /* control endpoint and security (zkit_library.h) */
} zkit_subscriber_opts_t;

#define ZKIT_SUBSCRIBER_OPTS_DEFAULT                                                               \
    {                                                                                              \
        .connect = NULL, .bind = NULL, .topics = NULL, .topic_count = 0, .replay = NULL,           \
        .recover = true, .learn_replay = true, .snapshot = false, .fetch_timeout_ms = 2000,        \
        .fetch_retries = 3, .fetch_batch = 1000, .probe_ms = 1000, .rcvhwm = 1000,                 \
        .max_sources = 1024, .max_gaps = 4096, .resume = NULL, .resume_count = 0, .handler = NULL, \
        .handler_arg = NULL, .on_event = NULL, .event_arg = NULL                                   \
    }

typedef struct {
    uint64_t received;   /* data messages read from the SUB socket            */
    uint64_t delivered;  /* handed to the handler, every kind                 */
    uint64_t late;       /* delivered LATE                                   */
    uint64_t recovered;  /* delivered RECOVERED                              */
    uint64_t snapshot;   /* delivered SNAPSHOT                               */
    uint64_t untracked;  /* delivered UNTRACKED                              */
    uint64_t duplicates; /* not delivered: seen before (or superseded by a
                            snapshot)                                        */
    uint64_t stale;      /* not delivered: from an older epoch                */
    uint64_t filtered;   /* not delivered: fetched to fill a gap, but for a
                            topic this subscriber does not subscribe to      */
    uint64_t gaps;       /* GAP events                                       */
    uint64_t missing;    /* seqs that went missing, in all                    */
    uint64_t lost;       /* seqs reported LOST (open-ended ranges not counted) */
    uint64_t pending;    /* seqs missing now, recovery not yet settled        */
    uint64_t restarts;   /* RESTART events                                   */
    uint64_t fetches;    /* FETCH requests sent                              */
    uint64_t fetch_timeouts;
    uint64_t bad;     /* frames dropped: wrong frame count, bad envelope,
                         malformed replay reply                           */
    uint64_t sources; /* sources tracked now                              */
    uint64_t links;   /* replay endpoints connected now                   */
    uint64_t paused;  /* 1 while PAUSEd (control endpoint), else 0        */
} zkit_subscriber_stats_t;

/*  Starts a subscriber: connects and binds, subscribes, then returns. NULL
    with errno set (EINVAL for bad options, the errors of the ops options:
    zkit_library.h) and a log line when that failed. Messages may be
    delivered to the handler before this returns. A bound SUB is a CURVE
    server, a connected SUB and every replay DEALER CURVE clients when
    opts.ops says so; the clients all use ops.curve_server as the server
    key, so the publishers' replay endpoints and the forwarders it connects
    to must share that keypair.                                             */
ZKIT_EXPORT zkit_subscriber_t *zkit_subscriber_new(const zkit_subscriber_opts_t *opts);

/*  Stops the subscriber (nothing more is delivered once this returns) and
    nulls *self_p; safe on NULL.                                             */
ZKIT_EXPORT void zkit_subscriber_destroy(zkit_subscriber_t **self_p);

/*  Adds or removes a subscription prefix at run time (no snapshot). Returns
    0, or -1 with errno EINVAL (longer than ZKIT_TOPIC_MAX) or ECANCELED.   */
ZKIT_EXPORT int zkit_subscriber_subscribe(zkit_subscriber_t *self, const char *prefix);
ZKIT_EXPORT int zkit_subscriber_unsubscribe(zkit_subscriber_t *self, const char *prefix);

/*  The control endpoint (opts.ops.control) as bound, resolved, owned by the
    subscriber; NULL when there is none. It answers STATS (every field of
    zkit_subscriber_stats_t, the sources as peers), PING, PAUSE and RESUME:
    a paused subscriber stops reading its feed (the SUB queue fills, then
    the publisher or forwarder drops for it; after RESUME the gaps are
    detected and fetched as any other) and still answers replay traffic.   */
ZKIT_EXPORT const char *zkit_subscriber_control(zkit_subscriber_t *self);

/*  Fills *stats. Returns 0, or -1 with errno ECANCELED (actor gone).        */
ZKIT_EXPORT int zkit_subscriber_stats(zkit_subscriber_t *self, zkit_subscriber_stats_t *stats);

/*  Copies up to max positions (one per tracked source) into out; returns the
    number of sources tracked (which may be more than max), or -1 with errno
    ECANCELED. Save them and pass them back as opts.resume to continue.     */
ZKIT_EXPORT ssize_t zkit_subscriber_positions(zkit_subscriber_t *self, zkit_stream_position_t *out,
                                              size_t max);

/*  True when no recovery is outstanding: no seq is missing that is still
    being fetched, and no snapshot is awaited. false also when the actor is
    gone.                                                                     */
ZKIT_EXPORT bool zkit_subscriber_settled(zkit_subscriber_t *self);

/*  Names of the kinds, reasons and events, for logs ("live", "evicted").    */
ZKIT_EXPORT const char *zkit_delivery_kind_name(zkit_delivery_kind_t kind);
ZKIT_EXPORT const char *zkit_lost_reason_name(zkit_lost_reason_t reason);
ZKIT_EXPORT const char *zkit_stream_event_name(zkit_stream_event_kind_t kind);

#ifdef __cplusplus
}
#endif

#endif
