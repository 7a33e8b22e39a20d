/*  device_internal.h (internal): the spool device's state, shared by
    device.c (life cycle, the actor loop, the API), device_in.c (producers:
    PUT, dedup, group commit, confirmations), device_out.c (consumers:
    credit, delivery, acks, dead letters) and device_ops.c (the control
    endpoint: STATS, PAUSE, RESUME). Everything here is owned by the actor's
    thread once the device runs.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_DEVICE_INTERNAL_H_INCLUDED
#define ZKIT_SPOOL_DEVICE_INTERNAL_H_INCLUDED

#include <czmq.h>

#include "core/ratelimit.h"
#include "core/traffic.h"
#include "zkit_envelope.h"
#include "zkit_spool_device.h"

#include "core/dispatcher.h"
#include "core/dlist.h"
#include "core/idtable.h"
#include "core/ops.h"
#include "core/recv.h"

#define ZKIT__SDEV_NAME_MAX   64
#define ZKIT__SDEV_PARTS      4    /* frames of the longest valid message, routing id included */
#define ZKIT__SDEV_IDS_MAX    1024 /* ids in one CONFIRMED or ACK frame */
#define ZKIT__SDEV_CREDIT_MAX 10000
#define ZKIT__SDEV_REASON_MAX 200 /* bytes of a REJECTED reason */
/* Largest frame a consumer has a reason to send: an ACK of IDS_MAX ids.
   Anything bigger is hostile; libzmq drops the connection at once.        */
#define ZKIT__SDEV_OUT_MAXMSG (64 * 1024)

/*  The device's bound sockets, for counting bad input per socket.          */
typedef enum { ZKIT__SDEV_IN = 0, ZKIT__SDEV_PUSH, ZKIT__SDEV_OUT } zkit__sdev_socket_t;

/*  A received message: up to ZKIT__SDEV_PARTS frames kept; more are read to
    the end and counted in dropped (patterns/core/recv.h).                   */
typedef zkit__recv_t zkit__sdev_msg_t;
_Static_assert(ZKIT__SDEV_PARTS <= ZKIT__RECV_PARTS_MAX, "spool device frames fit zkit__recv_t");

/*  A record in memory for delivery: the dispatcher's payload.              */
typedef struct {
    uint64_t seq;
    bool retired; /* acked before this device ever delivered it (an ack
                     from a consumer of the previous device): it is
                     retired when its turn comes, not delivered         */
    size_t size;
    uint8_t data[];
} zkit__sdev_record_t;

/*  A dedup window entry: an id stored at seq.                               */
typedef struct {
    uint8_t id[ZKIT_ID_SIZE];
    uint64_t seq;
    uint64_t hash;
    bool used;
} zkit__sdev_seen_t;

/*  A producer in the current burst, with the ids to confirm to it.         */
typedef struct {
    uint8_t rid[ZKIT__DISPATCHER_PEER_MAX];
    size_t rid_size;
    uint8_t *ids; /* 16 bytes each */
    size_t count, capacity;
} zkit__sdev_producer_t;

/*  A producer message held while the spool is full under BLOCK.            */
typedef struct zkit__sdev_held {
    struct zkit__sdev_held *next;
    int64_t since_ms;
    size_t rid_size; /* 0: fire-and-forget */
    uint8_t rid[ZKIT__DISPATCHER_PEER_MAX];
    size_t size;
    uint8_t data[];
} zkit__sdev_held_t;

/*  A registered consumer: the dispatcher keeps its credit and liveness; this
    list is what the actor heartbeats and STATS lists as peers.              */
typedef struct zkit__sdev_consumer {
    zkit__dlink_t link; /* on zkit__sdev_t.list, in arrival order */
    uint64_t hash;
    uint8_t size;
    uint8_t rid[]; /* size bytes */
} zkit__sdev_consumer_t;

typedef struct {
    /* options */
    char name[ZKIT__SDEV_NAME_MAX + 1];
    zkit_spool_device_opts_t opts;
    zkit_spool_full_t on_full; /* the user's policy (the spool runs REJECT for BLOCK) */
    /* sockets: made by the constructor, owned by the actor */
    zsock_t *pipe;
    zsock_t *in_sock, *push_sock, *out_sock;
    void *in, *push, *out;
    /* what crossed each of them (core/traffic.h), reported on STATS as
       sockets "in", "in_push" and "out"                                    */
    zkit__traffic_t traffic_in, traffic_push, traffic_out;
    /* security and the control endpoint; destroyed after the sockets      */
    zkit__ops_t *ops;
    bool paused; /* PAUSE: no delivery; producers are still stored        */
    /* the log */
    zkit_spool_t *spool;
    zkit_spool_t *dead_spool;
    zkit_spool_reader_t *reader;
    bool reader_done;     /* read everything visible: wait for the next burst */
    int64_t reader_retry; /* after a read error: when to try again            */
    uint64_t durable_seq; /* every seq up to it may be confirmed               */
    uint64_t burst_first; /* first seq appended in the burst, 0 = none         */
    uint64_t burst_last;  /* last seq appended in the burst                    */
    /* producers */
    zkit__sdev_seen_t *seen; /* the dedup ring, dedup_window entries */
    size_t seen_next;
    zkit__idtable_t seen_table;
    zkit__sdev_producer_t *producers; /* of the current burst */
    size_t nproducers, producers_cap;
    zkit__sdev_held_t *held, *held_tail;
    /* consumers */
    zkit__dispatcher_t *dispatcher;
    zkit__idtable_t consumers;
    zkit__dlink_t list; /* sentinel of the consumer list (dlist.h) */
    int64_t next_heartbeat;
    int64_t next_checkpoint;
    int64_t next_retain;
    /* scratch */
    zkit_envelope_t *env;
    uint64_t hash_seed;
    zkit__ratelimit_t bad_log, dead_log, push_log;
    zkit_spool_device_stats_t stats;
    /* of stats.bad_in, the ones that came on the PULL socket              */
    uint64_t bad_push[ZKIT_SPOOL_DEVICE_BAD_REASONS_];
    bool terminated;
} zkit__sdev_t;

/* ---- device.c ------------------------------------------------------------------ */

/*  Receives one whole message without waiting and counts it (every frame,
    dropped ones too) in traffic unless that is NULL (the pipe). Returns 0,
    or -1 with errno (EAGAIN: nothing waiting).                               */
int zkit__sdev_recv(void *socket, zkit__sdev_msg_t *msg, zkit__traffic_t *traffic);
void zkit__sdev_msg_close(zkit__sdev_msg_t *msg);

/*  Counts a message dropped on socket and logs it (rate-limited).          */
void zkit__sdev_bad(zkit__sdev_t *self, zkit__sdev_socket_t socket, zkit_spool_device_bad_t why,
                    int64_t now);

/*  Brings the gauges of self->stats (queue, held, the spool's) up to date. */
void zkit__sdev_fill_stats(zkit__sdev_t *self);

/*  Sends frames (count of them, each data/size) to a ROUTER peer, without
    waiting, and counts the message (the routing id frame included) in
    traffic. Returns 0, or -1 with errno (EHOSTUNREACH: the peer is gone).    */
int zkit__sdev_send(void *router, const void *rid, size_t rid_size, const void *const *data,
                    const size_t *size, size_t count, zkit__traffic_t *traffic);

/*  True when the frame is the command word cmd.                              */
bool zkit__sdev_is(const zmq_msg_t *frame, const char *cmd);

/* ---- device_in.c --------------------------------------------------------------- */

/*  Fills the dedup window from the newest records of the spool.             */
int zkit__sdev_in_start(zkit__sdev_t *self);
void zkit__sdev_in_stop(zkit__sdev_t *self);

/*  Drains the producer sockets (up to burst messages), appends, syncs once,
    confirms. Also retries held messages first.                               */
void zkit__sdev_in_burst(zkit__sdev_t *self, int64_t now);

/*  Retries the held messages (BLOCK), rejecting those past their wait.     */
void zkit__sdev_in_retry(zkit__sdev_t *self, int64_t now);

/* ---- device_out.c -------------------------------------------------------------- */

int zkit__sdev_out_start(zkit__sdev_t *self);
void zkit__sdev_out_stop(zkit__sdev_t *self);

/*  Handles one message from a consumer.                                     */
void zkit__sdev_out_message(zkit__sdev_t *self, zkit__sdev_msg_t *msg, int64_t now);

/*  Reads records from the spool into the dispatcher, delivers what credit
    allows, heartbeats, handles dead letters. Returns when the next call is
    due (monotonic ms).                                                        */
int64_t zkit__sdev_out_work(zkit__sdev_t *self, int64_t now);

/*  Makes the reader look for new records again (after a burst).            */
void zkit__sdev_out_wake(zkit__sdev_t *self);

/*  Adds the current consumers, with when each was last heard from, to the
    STATS peers.                                                              */
void zkit__sdev_out_peers(zkit__sdev_t *self, zkit__stats_t *stats);

/* ---- device_ops.c -------------------------------------------------------------- */

/*  The control endpoint's callbacks (core/control.h); arg is the state.   */
void zkit__sdev_ops_stats(zkit__stats_t *stats, void *arg);
zkit__control_result_t zkit__sdev_ops_command(const char *command, const char *args, char *reply,
                                              size_t reply_size, void *arg);

#endif
