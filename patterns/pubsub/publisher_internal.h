/*  publisher_internal.h (internal): what publisher.c (the actor, the feed,
    the caller's API) and publisher_replay.c (answering FETCH, PROBE and
    SNAPSHOT, the last-value cache) share. Everything here belongs to the
    publisher's actor thread.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_PUBLISHER_INTERNAL_H_INCLUDED
#define ZKIT_PUBSUB_PUBLISHER_INTERNAL_H_INCLUDED

#include <czmq.h>

#include "zkit_publisher.h"
#include "core/ops.h"
#include "core/ratelimit.h"
#include "core/traffic.h"
#include "pubsub/protocol.h"
#include "pubsub/publisher_spool.h"
#include "pubsub/replay.h"

typedef struct {
    zsock_t *pipe;
    zsock_t *data;
    zsock_t *xpub;
    zsock_t *replay;
    void *xpub_handle;
    zkit__replay_t *ring;
    zkit__pub_spool_t *spool; /* replay_spool_dir, or NULL                   */
    zhashx_t *lvc;            /* topic -> zkit__pub_lvc_entry_t                          */
    zlistx_t *prefixes;       /* s_prefix_t: what subscribers subscribed to    */
    zkit_publisher_opts_t opts;
    char name[ZKIT_SRC_MAX + 1];
    uint64_t epoch;
    uint64_t last_seq;            /* newest seq the actor has handled              */
    zkit_publisher_stats_t stats; /* published and bytes: feed_traffic's */
    /* Every whole message: feed (XPUB) out, the published ones; in, what
       subscribers sent (subscriptions, malformed ones too); replay (ROUTER)
       in, requests, out, answers (the routing id frame counted too). */
    zkit__traffic_t feed_traffic;
    zkit__traffic_t replay_traffic;
    zkit__ops_t *ops;                               /* the caller's; NULL-safe */
    uint64_t bad_replay[ZKIT__PUBSUB_BAD_REASONS_]; /* per reason              */
    uint64_t bad_feed[ZKIT__PUBSUB_SUB_REASONS_];   /* by zkit__pubsub_sub_t */
    zkit__ratelimit_t bad_feed_log;
    bool paused; /* PAUSE: the data pipe is not read                        */
    zkit__ratelimit_t bad_log;
    bool terminated;
    /* a pending zkit_publisher_wait_subscriber */
    bool waiting;
    char wait_topic[ZKIT_TOPIC_MAX + 1];
    int64_t wait_deadline; /* zclock_mono ms; -1: none                  */
    /* nodrop: the message the XPUB could not take yet */
    bool pending;
    zmq_msg_t pending_topic;
    zmq_msg_t pending_envelope;
} zkit__pub_actor_t;

/* ---- publisher.c ------------------------------------------------------------ */

/*  Handles what the data pipe holds now (messages the application handed
    over). Stops at a message the XPUB cannot take yet (nodrop) unless block
    is true: then it keeps trying until until_ms (a zclock_mono deadline;
    -1 for ever).                                                           */
void zkit__pub_drain_data(zkit__pub_actor_t *a, bool block, int64_t until_ms);

/* ---- publisher_ops.c ----------------------------------------------------------- */

/*  The counters as zkit_publisher_stats reports them.                      */
void zkit__pub_stats_get(zkit__pub_actor_t *a, zkit_publisher_stats_t *st);

/*  The ops callbacks; arg points at the publisher's pointer to the actor's
    state (zkit__pub_actor_t **), set before the actor signals.            */
void zkit__pub_ops_stats(zkit__stats_t *stats, void *arg);
zkit__control_result_t zkit__pub_ops_command(const char *command, const char *args, char *reply,
                                             size_t reply_size, void *arg);

/* ---- publisher_replay.c ------------------------------------------------------ */

/*  A topic -> last value table for the cache. NULL out of memory.          */
zhashx_t *zkit__pub_lvc_new(void);

/*  Makes message seq (its frames) the last value of its topic, unless the
    cache is full of other topics (counted in lvc_refused).                 */
void zkit__pub_lvc_update(zkit__pub_actor_t *a, uint64_t seq, zmq_msg_t *topic,
                          zmq_msg_t *envelope);

/*  Answers every request waiting on the replay ROUTER.                     */
void zkit__pub_handle_replay(zkit__pub_actor_t *a);

#endif
