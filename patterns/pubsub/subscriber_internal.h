/*  subscriber_internal.h (internal): what subscriber.c (the actor, the feed,
    delivery) and recovery.c (fetches, snapshots, replay links) share.

    Everything here belongs to the subscriber's actor thread.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_SUBSCRIBER_INTERNAL_H_INCLUDED
#define ZKIT_PUBSUB_SUBSCRIBER_INTERNAL_H_INCLUDED

#include <czmq.h>

#include "zkit_subscriber.h"
#include "core/ops.h"
#include "core/ratelimit.h"
#include "core/traffic.h"
#include "pubsub/gaps.h"
#include "pubsub/protocol.h"

/* Replay endpoints one subscriber talks to at once.                        */
#define ZKIT__SUB_LINKS_MAX 64
/* Live messages held while a snapshot is awaited; past this the snapshot
   is given up and they are delivered.                                     */
#define ZKIT__SUB_BUFFER_MAX 100000
/* How often timers (fetch and snapshot deadlines) are looked at.          */
#define ZKIT__SUB_TICK_MS 50
/* A request that could not even be queued (not connected yet) is tried
   again after this long.                                                  */
#define ZKIT__SUB_RETRY_UNSENT_MS 100

/*  A topic frame and an envelope frame, held for later.                    */
typedef struct {
    zmq_msg_t topic;
    zmq_msg_t envelope;
} zkit__sub_held_t;

/*  One replay endpoint: a DEALER connected to a publisher's ROUTER.        */
typedef struct {
    char endpoint[ZKIT_ENDPOINT_MAX + 1];
    zsock_t *dealer;
    bool configured;       /* from opts.replay (snapshots go there)        */
    bool snapshot_pending; /* SNAPSHOT asked (or to ask), no SNAPEND yet   */
    bool snapshot_sent;
    zlistx_t *values; /* zkit__sub_held_t: VALUEs until SNAPEND              */
} zkit__sub_link_t;

/*  Recovery state of one source (the gap detector's stream->user).         */
typedef struct {
    zkit__sub_link_t *link; /* where its missing seqs are fetched; NULL none */
    bool announced;         /* link came from the source's own hdr          */
    bool probe_wanted;      /* ask the source how far it has published      */
    bool in_flight;         /* a FETCH or PROBE is out                       */
    bool probing;           /* ... and it is a PROBE                         */
    bool sent;              /* ... and was queued (not just attempted)       */
    uint64_t epoch;         /* the FETCH's                                   */
    uint64_t from, to;
    uint64_t delivered;   /* messages the FETCH recovered so far           */
    int64_t first_try_ms; /* zclock_mono of its first attempt              */
    int64_t retry_at_ms;
    int64_t heard_ms;   /* last message from this source, any way        */
    bool silent_logged; /* its replay endpoint's silence was reported    */
} zkit__sub_source_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *sub;
    void *sub_handle;
    zkit_subscriber_opts_t opts;
    zkit__gaps_t *gaps;
    zkit__sub_link_t *links[ZKIT__SUB_LINKS_MAX];
    size_t nlinks;
    zkit__sub_link_t *default_link; /* the first configured one               */
    zkit_subscriber_stats_t stats;
    /* Every whole message, malformed ones too: feed (SUB) in; replay (all
       links together) in, answers, and out, requests.                      */
    zkit__traffic_t feed_traffic;
    zkit__traffic_t replay_traffic;
    zkit_envelope_t *env;
    char *topic_buf;
    size_t topic_capacity;
    size_t in_flight; /* sources with a FETCH out                            */
    /* a snapshot window: live messages are held until every SNAPEND */
    bool buffering;
    zlistx_t *held; /* zkit__sub_held_t                                      */
    int64_t snapshot_deadline_ms;
    bool links_full_logged;
    bool terminated;
    bool paused;      /* PAUSE: the feed is not read                        */
    zkit__ops_t *ops; /* the caller's; NULL-safe                            */
    uint64_t bad_feed[ZKIT__PUBSUB_BAD_REASONS_];   /* bad, from the feed      */
    uint64_t bad_replay[ZKIT__PUBSUB_BAD_REASONS_]; /* bad, from replay links  */
    zkit__ratelimit_t replay_error_log;
    zkit__ratelimit_t bad_log;
    char prefixes[ZKIT_SUBSCRIBE_MAX][ZKIT_TOPIC_MAX + 1]; /* asked at start */
    size_t nprefixes;
    zlistx_t *subscriptions; /* char *: every prefix subscribed now          */
} zkit__sub_t;

/*  Where a message came from.                                              */
typedef enum { ZKIT__SUB_LIVE, ZKIT__SUB_REPLAY, ZKIT__SUB_VALUE } zkit__sub_origin_t;

/* ---- subscriber.c --------------------------------------------------------- */

/*  Decodes and classifies one message, delivers it when it is new, takes
    both frames (closes them). Returns 0, or -1 when the envelope was bad.  */
int zkit__sub_process(zkit__sub_t *a, zmq_msg_t *topic, zmq_msg_t *envelope,
                      zkit__sub_origin_t origin);

/*  Delivers an already-decoded envelope (in a->env) to the handler.        */
void zkit__sub_deliver(zkit__sub_t *a, zmq_msg_t *topic, zkit__gaps_stream_t *stream,
                       zkit_delivery_kind_t kind);

/*  Counts a bad frame and logs it (rate-limited).                          */
void zkit__sub_bad(zkit__sub_t *a, zkit__pubsub_bad_t why, const char *where);

/* ---- recovery.c ----------------------------------------------------------- */

/*  The link for endpoint, connecting a new one when create is true and there
    is room. NULL otherwise.                                                 */
zkit__sub_link_t *zkit__sub_link(zkit__sub_t *a, const char *endpoint, bool create);

void zkit__sub_links_destroy(zkit__sub_t *a);

/*  The recovery state of a stream, made on first use. NULL out of memory.   */
zkit__sub_source_t *zkit__sub_source(zkit__gaps_stream_t *stream);

/*  Sends the stream's next FETCH (or PROBE) when none is out and there is
    something to ask; reports missing ranges LOST (NO_REPLAY) when nothing
    can fetch them.                                                           */
void zkit__sub_schedule(zkit__sub_t *a, zkit__gaps_stream_t *stream);

/*  A RESTART of the stream: a FETCH for the old epoch is abandoned.         */
void zkit__sub_source_reset(zkit__sub_t *a, zkit__sub_source_t *source);

/*  Handles everything waiting on a link's DEALER.                          */
void zkit__sub_handle_link(zkit__sub_t *a, zkit__sub_link_t *link);

/*  Deadlines: retries and gives up fetches, asks or gives up snapshots.    */
void zkit__sub_tick(zkit__sub_t *a);

/*  At start: replay links, resume positions (each probed) and snapshots.   */
int zkit__sub_start_recovery(zkit__sub_t *a);

/*  Delivers the live messages held during a snapshot window, in order.      */
void zkit__sub_flush_held(zkit__sub_t *a);

void zkit__sub_held_free(void **item);

#endif
