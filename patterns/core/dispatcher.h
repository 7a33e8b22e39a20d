/*  dispatcher.h (internal): credit-based dispatch with acknowledgements.

    The one mechanism behind the reliable pipeline (a ventilator handing tasks
    to workers), the load balancer (requests to the least recently used ready
    worker) and the spool device (records leave only when acked). Each of
    those owns its sockets and translates frames into the calls below; the
    dispatcher decides who gets what, remembers what is in flight, and puts
    work back when a peer dies, is too slow or says it failed.

    It is a pure state machine: no sockets, no threads, no clock. Every call
    that depends on time takes now_ms, a monotonic clock in milliseconds
    (zclock_mono() in the components), so tests drive time exactly. now_ms
    must not go backwards; a smaller value than one seen before is treated as
    the largest seen so far. The dispatcher is not thread-safe: one thread
    (the component's actor) owns it.

    Model. An item is one unit of work: a 16-byte id (the envelope id, unique
    among live items), an opaque payload the dispatcher owns once submitted,
    and an attempt count. It is QUEUED, IN_FLIGHT to one peer, or gone
    (acked, or dead-lettered). The queue is FIFO, except that a failed
    attempt goes back ahead of every fresh item, behind earlier retries.
    A peer is a routing id with a credit window: it may hold at most window
    items in flight. next() pairs the head of the queue with the available
    peer (in flight < window) that was given work, or became available,
    longest ago: the Guide's LRU queue, generalised to windows above 1.

    An attempt fails when the peer nacks it, when the peer goes away with it
    in flight (peer_gone, or liveness: no sign of life for more than
    heartbeat_ms * liveness), or when it is not acked within
    attempt_timeout_ms. A failed item is requeued, or dead-lettered once it
    has had max_attempts attempts, so a poison item that kills every worker
    ends in the dead-letter list instead of killing workers forever. An item
    whose expiry passes while it waits is dead-lettered as EXPIRED. Dead
    letters are drained by the caller with next_dead(); nothing is dropped.

    Peers that liveness removes are handed out the same way, by
    next_expired(), so a caller that keeps its own per-peer state (a
    dialect, a STATS list) learns who died in O(1) per death instead of
    scanning its peers. Unlike dead letters these records are bounded: see
    max_expired.

    Pointers returned in a job, item info or peer info point into the
    dispatcher and stay valid until the next call on it that is not a read-
    only query (find, peer_info, counters, next_due).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_DISPATCHER_H_INCLUDED
#define ZKIT_DISPATCHER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zkit__dispatcher_t zkit__dispatcher_t;

/* A time that never comes: "no expiry", "no deadline", "nothing due".       */
#define ZKIT__DISPATCHER_NEVER INT64_MAX

/* Routing ids are 1 to 255 bytes, as libzmq's ROUTER sockets make them.     */
#define ZKIT__DISPATCHER_PEER_MAX 255

/* Why an attempt failed, or why an item was dead-lettered.                  */
typedef enum {
    ZKIT__DISPATCHER_NACKED = 0, /* the peer reported that the attempt failed */
    ZKIT__DISPATCHER_PEER_DIED,  /* its peer went away (peer_gone or liveness) */
    ZKIT__DISPATCHER_TIMED_OUT,  /* no ack within attempt_timeout_ms */
    ZKIT__DISPATCHER_EXPIRED,    /* its expiry passed before it was delivered */
    ZKIT__DISPATCHER_REASONS_
} zkit__dispatcher_reason_t;

typedef enum {
    ZKIT__DISPATCHER_QUEUED = 1,
    ZKIT__DISPATCHER_IN_FLIGHT,
} zkit__dispatcher_state_t;

/*  Frees a payload the dispatcher owns. arg is opts.payload_free_arg.       */
typedef void(zkit__dispatcher_free_fn)(void *payload, void *arg);

typedef struct {
    /* Attempts an item gets before it is dead-lettered; 0 = unlimited.      */
    uint32_t max_attempts;
    /* A peer silent for more than heartbeat_ms * liveness ms is presumed
       dead. heartbeat_ms 0 turns liveness off (peers leave only by
       peer_gone); liveness must then still be valid (1 or more).            */
    uint32_t heartbeat_ms;
    uint32_t liveness;
    /* An attempt not acked this long after dispatch fails as TIMED_OUT;
       0 = attempts never time out (liveness alone catches dead peers).      */
    uint32_t attempt_timeout_ms;
    /* Items held at once (queued + in flight + dead letters not yet
       drained); submit fails with ENOBUFS beyond it. 0 = no limit.          */
    size_t max_items;
    /* Called once for every payload the dispatcher disposes of: on an ack
       without hand-back, and for items still held at destroy. NULL = the
       caller manages payload memory itself.                                 */
    zkit__dispatcher_free_fn *payload_free;
    void *payload_free_arg;
    /* Mixed into the id and routing-id hashes so a peer cannot choose ids
       that collide; the components pass a random value. 0 is fine in tests. */
    uint64_t hash_seed;
    /* Records of expired peers (next_expired) kept from earlier instants.
       When a peer expires while this many or more records are pending, the
       oldest records whose expired_ms is before the current now are
       discarded (counted in expired_dropped). Records of the current now are
       never discarded, so a caller that drains after its next()/tick() calls
       at one now, before it passes a later one, sees every expiry; a caller
       that never drains holds at most max_expired records plus those of the
       latest instant (each is the memory of the peer it replaces: expiring
       never allocates). 0 keeps only the latest instant's records.          */
    size_t max_expired;
} zkit__dispatcher_opts_t;

#define ZKIT__DISPATCHER_OPTS_DEFAULT                                                              \
    {                                                                                              \
        .max_attempts = 5, .heartbeat_ms = 1000, .liveness = 3, .attempt_timeout_ms = 0,           \
        .max_items = 0, .payload_free = NULL, .payload_free_arg = NULL, .hash_seed = 0,            \
        .max_expired = 1024                                                                        \
    }

/*  What next() hands out: send payload to peer, with att = attempts.        */
typedef struct {
    const uint8_t *peer; /* routing id of the peer */
    size_t peer_size;
    const uint8_t *id;   /* 16 bytes */
    void *payload;       /* still owned by the dispatcher */
    uint32_t attempts;   /* 1 on first delivery, as the envelope's att */
    int64_t deadline_ms; /* from this time on the attempt has timed out;
                            ZKIT__DISPATCHER_NEVER without a timeout       */
} zkit__dispatcher_job_t;

/*  A dead letter, as next_dead() hands it over.                             */
typedef struct {
    uint8_t id[16];
    void *payload;                    /* now owned by the caller */
    uint32_t attempts;                /* attempts it had (0: never sent) */
    zkit__dispatcher_reason_t reason; /* of its last failure, or EXPIRED */
} zkit__dispatcher_dead_t;

/*  A peer removed by liveness, as next_expired() hands it over. The record
    is a copy: it stays valid whatever the caller does next.                 */
typedef struct {
    uint8_t peer[ZKIT__DISPATCHER_PEER_MAX]; /* its routing id */
    size_t peer_size;
    int64_t last_seen_ms; /* its last sign of life */
    int64_t expired_ms;   /* the now of the call that removed it */
    bool registered;      /* a peer with this routing id is registered again
                             at drain time (peer_ready after the expiry): the
                             record is about its earlier registration, and
                             the caller's state for the new one must stay  */
} zkit__dispatcher_expired_t;

typedef struct {
    zkit__dispatcher_state_t state;
    uint32_t attempts;
    const uint8_t *peer; /* IN_FLIGHT: its peer's routing id; else NULL */
    size_t peer_size;
    int64_t deadline_ms; /* IN_FLIGHT: as in the job; else NEVER */
    int64_t expires_at_ms;
    void *payload; /* still owned by the dispatcher */
} zkit__dispatcher_item_info_t;

typedef struct {
    uint32_t window;
    uint32_t in_flight;
    int64_t last_seen_ms;
    int64_t expires_at_ms; /* from this time on it is presumed dead; NEVER
                              when liveness is off                          */
} zkit__dispatcher_peer_info_t;

/*  Counters, updated as things happen. Totals only grow; the gauges at the
    end are current values. Two identities hold after every call:
      submitted  == queued + in_flight + acked + dead_lettered
      dispatched == in_flight + (acked - late_acks) + requeued
                    + dead_lettered_by[NACKED, PEER_DIED, TIMED_OUT]
    (every attempt is in flight, acked, or failed), and every expired peer
    is drained, pending or dropped:
      peers_expired == (records next_expired returned) + expired_pending
                       + expired_dropped                                    */
typedef struct {
    uint64_t submitted;  /* items accepted by submit */
    uint64_t dispatched; /* attempts handed out by next */
    uint64_t acked;      /* items retired by an ack */
    uint64_t late_acks;  /* of those, acks for an item waiting in the queue
                            (its attempt had already been counted failed)  */
    uint64_t nacked;     /* nacks that failed an attempt */
    uint64_t requeued;   /* failed attempts put back in the queue */
    uint64_t requeued_by[ZKIT__DISPATCHER_REASONS_];
    uint64_t dead_lettered;
    uint64_t dead_lettered_by[ZKIT__DISPATCHER_REASONS_];
    uint64_t duplicate_acks;  /* acks for an id that is not live */
    uint64_t rejected_acks;   /* acks for a live item never dispatched */
    uint64_t stale_nacks;     /* nacks for an id not in flight to that peer */
    uint64_t peers_expired;   /* peers removed by liveness */
    uint64_t expired_dropped; /* of those, records discarded undrained
                                 (max_expired)                           */
    uint64_t peers_gone;      /* peers removed by peer_gone */
    /* gauges */
    uint64_t queued;
    uint64_t in_flight;
    uint64_t dead_pending;    /* dead letters not yet drained */
    uint64_t expired_pending; /* expiry records not yet drained */
    uint64_t peers;
    uint64_t peers_available;
} zkit__dispatcher_counters_t;

/*  Creates a dispatcher with opts (NULL = defaults). Returns NULL with errno
    EINVAL when liveness is 0, or ENOMEM.                                    */
zkit__dispatcher_t *zkit__dispatcher_new(const zkit__dispatcher_opts_t *opts);

/*  Destroys the dispatcher and nulls *self_p. Every payload it still owns
    (queued, in flight, and dead letters not drained) goes to payload_free,
    so drain dead letters first to keep them; expiry records not drained
    are discarded. Safe on NULL and *self_p NULL. */
void zkit__dispatcher_destroy(zkit__dispatcher_t **self_p);

/*  Adds an item at the tail of the queue. On success the dispatcher owns
    payload (which may be NULL) and returns 0. expires_at_ms is the time from
    which the item is expired (ZKIT__DISPATCHER_NEVER: never); an item already
    expired at now_ms is accepted and dead-lettered at once as EXPIRED. On
    error the caller still owns payload and nothing changed: -1 with errno
    EEXIST (an item with this id is queued or in flight: a duplicate),
    ENOBUFS (max_items reached) or ENOMEM.                                   */
int zkit__dispatcher_submit(zkit__dispatcher_t *self, const uint8_t id[16], void *payload,
                            int64_t expires_at_ms, int64_t now_ms);

/*  Registers a peer, or refreshes one, with a credit window: the number of
    items it may hold in flight at once. The peer counts as seen at now_ms.
    A new peer, or one whose window now exceeds its in-flight count, joins
    the end of the LRU order; an available peer keeps its place. A window of
    0, or below what it already holds, stops dispatch to it without taking
    anything back. Returns 0, or -1 with errno EINVAL (peer NULL or its size
    not in 1..255) or ENOMEM.                                                */
int zkit__dispatcher_peer_ready(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                                uint32_t window, int64_t now_ms);

/*  Records a sign of life (heartbeat or any traffic) from a peer, which
    postpones its liveness expiry. Returns 0, or -1 with errno ENOENT for a
    peer not registered (the caller may tell it to register again) or
    EINVAL for a bad routing id.                                             */
int zkit__dispatcher_peer_seen(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                               int64_t now_ms);

/*  Removes a peer that disconnected. Every item in flight to it fails as
    PEER_DIED (requeued, or dead-lettered after max_attempts). Returns 0, or
    -1 with errno ENOENT (unknown peer) or EINVAL.                           */
int zkit__dispatcher_peer_gone(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                               int64_t now_ms);

/*  Hands out the next piece of work: first does what tick(now_ms) would
    (so no work goes to a peer already presumed dead), then pairs the head of
    the queue with the least recently used available peer. The item becomes
    IN_FLIGHT to that peer, its attempt count grows by one and its deadline
    is set. Fills *job and returns true; returns false, leaving *job alone,
    when the queue is empty or no peer is available. Call it in a loop until
    it returns false. Can't fail.                                            */
bool zkit__dispatcher_next(zkit__dispatcher_t *self, int64_t now_ms, zkit__dispatcher_job_t *job);

/*  Retires the item id: its peer gets the credit back and the item is gone.
    peer (may be NULL) is who sent the ack; a known peer counts as seen. The
    ack retires the item wherever it is: in flight to this peer, in flight to
    another (the work was done; the other peer's later ack becomes a
    duplicate), or back in the queue because its peer was presumed dead
    (a late ack: it is never dispatched again). With payload_p the payload
    is handed back and the caller owns it (the spool retires its record, the
    balancer routes the reply with it); without, payload_free disposes of
    it. Returns 0, or -1 and leaves *payload_p NULL with errno ENOENT (no
    live item has this id: a duplicate, counted and otherwise harmless),
    EPROTO (the item was never dispatched, so no one can have done it; it
    stays queued) or EINVAL (bad routing id).                                */
int zkit__dispatcher_ack(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                         const uint8_t id[16], int64_t now_ms, void **payload_p);

/*  The peer (may be NULL: whichever holds it) reports that the attempt on
    id failed: it is requeued, or dead-lettered as NACKED when it had
    max_attempts attempts. A known peer counts as seen. Returns 0, or -1
    with errno ENOENT (no live item has this id) or ESTALE (the item is not
    in flight to this peer: the attempt already failed otherwise, so it is
    not counted twice), both counted as stale_nacks, or EINVAL.              */
int zkit__dispatcher_nack(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                          const uint8_t id[16], int64_t now_ms);

/*  Applies everything due at now_ms: removes peers silent for more than
    heartbeat_ms * liveness (their items fail as PEER_DIED), fails attempts
    past their deadline as TIMED_OUT (freeing the peer's credit), and dead-
    letters queued items whose expiry came. Returns next_due(). Can't fail.  */
int64_t zkit__dispatcher_tick(zkit__dispatcher_t *self, int64_t now_ms);

/*  The earliest time at which tick() has something to do, or
    ZKIT__DISPATCHER_NEVER. The caller polls for at most (due - now) ms.
    Changes after submit, next, ack and the peer calls, so ask again after
    them. Constant time; doesn't modify anything.                            */
int64_t zkit__dispatcher_next_due(const zkit__dispatcher_t *self);

/*  Takes the oldest dead letter. Fills *dead, hands the payload to the
    caller (who must free or store it) and returns true; false when there is
    none. Can't fail.                                                        */
bool zkit__dispatcher_next_dead(zkit__dispatcher_t *self, zkit__dispatcher_dead_t *dead);

/*  Takes the oldest record of a peer removed by liveness (in the order they
    expired, the least recently seen first), fills *expired and returns true; false when there is
   none. Every peer liveness removes gets one record, even one that registers again with peer_ready
   before the drain (registered then says so; it may expire again and get a second record). Only
   max_expired discards records, counted. Can't fail.                                            */
bool zkit__dispatcher_next_expired(zkit__dispatcher_t *self, zkit__dispatcher_expired_t *expired);

/*  Describes the live item id in *info. Returns 0, or -1 with errno ENOENT
    when no item with this id is queued or in flight.                        */
int zkit__dispatcher_find(const zkit__dispatcher_t *self, const uint8_t id[16],
                          zkit__dispatcher_item_info_t *info);

/*  Describes a registered peer in *info. Returns 0, or -1 with errno ENOENT
    (unknown peer) or EINVAL (bad routing id).                               */
int zkit__dispatcher_peer_info(const zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                               zkit__dispatcher_peer_info_t *info);

/*  The counters, valid for the dispatcher's lifetime and always current.    */
const zkit__dispatcher_counters_t *zkit__dispatcher_counters(const zkit__dispatcher_t *self);

/*  "NACKED", "PEER_DIED", "TIMED_OUT", "EXPIRED", or "?". Static string.    */
const char *zkit__dispatcher_reason_name(zkit__dispatcher_reason_t reason);

#endif
