/*  bench_pubsub.h (internal to the zkit program): the paths `zkit bench
    pubsub` compares. Each path moves the same feed (topic frame + zkit
    envelope) from one publisher to N subscribers of this process over
    tcp://127.0.0.1; only what sits between them differs:

      direct   the publisher's socket straight to the subscribers
      proxy    raw zmq_proxy(XSUB, XPUB) on its own thread (the anchor)
      proxy_nodrop  the same with ZMQ_XPUB_NODROP on the proxy's XPUB and the
               publisher's: the like-for-like anchor of NODROP
      drop     zkit_forwarder, DROP policy
      nodrop   zkit_forwarder, NODROP policy, behind a NODROP publisher

    bench_pubsub.c runs the rounds and prints the report; bench_pubsub_path.c
    builds a path and runs it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BENCH_PUBSUB_H_INCLUDED
#define ZKIT_BENCH_PUBSUB_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZKIT__PUBSUB_NAME "pubsub"

/*  Nothing arrived for this long: the run is stalled and fails.             */
#define ZKIT__PUBSUB_STALL_MS 10000

/*  Subscribers one path may have: each subscribes to its own prefix of the
    topic (so every subscription reaches the publisher as a distinct event,
    whatever deduplicates on the way), and the topic has this many.          */
#define ZKIT__PUBSUB_MAX_SUBS 8

/*  The topic every data message carries.                                   */
#define ZKIT__PUBSUB_TOPIC "bench.pubsub"

typedef enum {
    ZKIT__PUBSUB_DIRECT,
    ZKIT__PUBSUB_PROXY,
    ZKIT__PUBSUB_PROXY_NODROP,
    ZKIT__PUBSUB_DROP,
    ZKIT__PUBSUB_NODROP,
    ZKIT__PUBSUB_PATH_COUNT
} zkit__pubsub_path_t;

/*  What one run delivered, per subscriber.                                  */
typedef struct {
    uint64_t delivered[ZKIT__PUBSUB_MAX_SUBS];  /* data messages received   */
    uint64_t elapsed_ns[ZKIT__PUBSUB_MAX_SUBS]; /* first send to the
                                                   subscriber's last message */
    uint64_t wall_ns;                           /* first send to the last
                                                   message of any subscriber */
    uint64_t cpu_ns;                            /* the process's, whole run  */
} zkit__pubsub_run_t;

typedef struct zkit__pubsub_side zkit__pubsub_side_t;

/*  Builds a path with subscribers subscribers for payload-byte bodies, and
    waits (on the subscription events the publisher's XPUB reports) until
    every subscriber is reachable. NULL after printing why.                  */
zkit__pubsub_side_t *zkit__pubsub_open(zkit__pubsub_path_t path, int subscribers, size_t payload);

/*  Publishes messages messages and waits until every subscriber has had all
    it will get (an end marker, resent until each has seen it, follows the
    data). Returns 0, or -1 after printing why.                              */
int zkit__pubsub_run(zkit__pubsub_side_t *side, uint64_t messages, zkit__pubsub_run_t *run);

/*  Frees everything; safe on NULL.                                         */
void zkit__pubsub_destroy(zkit__pubsub_side_t *side);

/*  Bytes on the wire per data message: the topic frame plus the envelope.  */
size_t zkit__pubsub_wire_bytes(size_t payload);

/*  "direct", "proxy", "drop", "nodrop".                                    */
const char *zkit__pubsub_path_name(zkit__pubsub_path_t path);

#endif
