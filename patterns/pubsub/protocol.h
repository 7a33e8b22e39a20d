/*  protocol.h (internal): the replay side channel of ZKIT-PUBSUB/1.

    docs/pubsub-protocol.md is the contract; this file turns its tables into
    code. A publisher binds a ROUTER ("replay endpoint"); subscribers connect
    DEALERs to it and ask for missed seqs (FETCH) or for the last value of
    each topic (SNAPSHOT). Every message starts with an upper-case command
    frame; numbers are ASCII decimal. A message is received whole into a
    zkit__pubsub_frames_t, then parsed with every field checked before use;
    one that fails is counted under a reason and dropped by the caller.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_PROTOCOL_H_INCLUDED
#define ZKIT_PUBSUB_PROTOCOL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "zkit_subscriber.h"
#include "core/ops.h"
#include "core/ratelimit.h"
#include "core/recv.h"
#include "core/traffic.h"

/* Header keys a zkit publisher sets in every envelope's hdr map.            */
#define ZKIT__PUBSUB_HDR_EPOCH  "zkit-epoch"  /* int: the publisher's epoch    */
#define ZKIT__PUBSUB_HDR_REPLAY "zkit-replay" /* str: its replay endpoint      */

/* A routing id, the command and SNAPSHOT's prefixes: the longest message.  */
#define ZKIT__PUBSUB_FRAMES_MAX (2 + ZKIT_SUBSCRIBE_MAX)
#define ZKIT__PUBSUB_DIGITS_MAX 20  /* digits of a decimal uint64            */
#define ZKIT__PUBSUB_ERROR_MAX  256 /* bytes of an ERROR text                */

typedef enum {
    ZKIT__PUBSUB_NONE = 0,
    ZKIT__PUBSUB_FETCH,    /* subscriber -> publisher                        */
    ZKIT__PUBSUB_SNAPSHOT, /* subscriber -> publisher                        */
    ZKIT__PUBSUB_REPLAY,   /* publisher -> subscriber: one fetched message   */
    ZKIT__PUBSUB_VALUE,    /* publisher -> subscriber: one last value        */
    ZKIT__PUBSUB_END,      /* publisher -> subscriber: a FETCH is answered   */
    ZKIT__PUBSUB_SNAPEND,  /* publisher -> subscriber: a SNAPSHOT is answered */
    ZKIT__PUBSUB_ERROR,    /* publisher -> subscriber: a request is refused  */
    ZKIT__PUBSUB_PROBE,    /* subscriber -> publisher: where is your stream? */
    ZKIT__PUBSUB_STATUS,   /* publisher -> subscriber: epoch, first, last    */
    ZKIT__PUBSUB_COMMANDS_
} zkit__pubsub_cmd_t;

/*  Why a received message was dropped.                                       */
typedef enum {
    ZKIT__PUBSUB_BAD_FRAMES = 0, /* wrong number of frames for the command   */
    ZKIT__PUBSUB_BAD_COMMAND,    /* not a command of this protocol           */
    ZKIT__PUBSUB_BAD_NUMBER,     /* empty, non-digit, leading zero, > uint64 */
    ZKIT__PUBSUB_BAD_RANGE,      /* from 0, from > to, lost/served or first/last
                                    inconsistent                               */
    ZKIT__PUBSUB_BAD_SRC,        /* empty, too long, or contains a NUL       */
    ZKIT__PUBSUB_BAD_TOPIC,      /* topic or prefix too long or with a NUL   */
    ZKIT__PUBSUB_BAD_ENVELOPE,   /* REPLAY/VALUE envelope frame empty        */
    ZKIT__PUBSUB_BAD_TEXT,       /* ERROR text too long                      */
    ZKIT__PUBSUB_BAD_UNEXPECTED, /* a valid command the receiver never gets  */
    ZKIT__PUBSUB_BAD_REASONS_
} zkit__pubsub_bad_t;

/*  A parsed message. Which fields are set depends on cmd. Strings are
    NUL-terminated copies; topic and envelope point at frames of the parsed
    zkit__pubsub_frames_t and live as long as it does.                       */
typedef struct {
    zkit__pubsub_cmd_t cmd;
    char src[ZKIT_SRC_MAX + 1]; /* FETCH, END, SNAPEND, PROBE, STATUS        */
    uint64_t epoch;             /* FETCH (0: any), END, SNAPEND, STATUS      */
    uint64_t first;             /* STATUS: oldest seq held (last + 1: none)  */
    uint64_t from, to;          /* FETCH, END: 1 <= from <= to               */
    uint64_t lost_to;           /* END: 0, or from <= lost_to <= to          */
    uint64_t served_to;         /* END: 0, or lost_to < served_to <= to      */
    uint64_t last;              /* END, SNAPEND, STATUS: the newest seq      */
    uint64_t count;             /* SNAPEND: VALUE messages sent              */
    size_t prefix_count;        /* SNAPSHOT: 1..ZKIT_SUBSCRIBE_MAX           */
    char prefix[ZKIT_SUBSCRIBE_MAX][ZKIT_TOPIC_MAX + 1];
    size_t prefix_size[ZKIT_SUBSCRIBE_MAX];
    zmq_msg_t *topic;                      /* REPLAY, VALUE                                    */
    zmq_msg_t *envelope;                   /* REPLAY, VALUE                                    */
    char text[ZKIT__PUBSUB_ERROR_MAX + 1]; /* ERROR                          */
} zkit__pubsub_msg_t;

/*  One whole received message: at most ZKIT__PUBSUB_FRAMES_MAX frames held,
    the rest counted in dropped; bytes is what the wire carried, for the
    traffic counters (core/recv.h).                                           */
typedef zkit__recv_t zkit__pubsub_frames_t;
_Static_assert(ZKIT__PUBSUB_FRAMES_MAX <= ZKIT__RECV_PARTS_MAX, "a message fits a zkit__recv_t");

/*  Receives one whole message from socket (zsock_t or libzmq handle) with
    flags (ZMQ_DONTWAIT). Returns 0 with frames filled (the caller closes
    them), or -1 with errno from libzmq (EAGAIN: nothing waiting) and nothing
    held. zkit__recv with this protocol's limit.                              */
static inline int zkit__pubsub_recv(void *socket, zkit__pubsub_frames_t *frames, int flags)
{
    return zkit__recv(zsock_resolve(socket), frames, ZKIT__PUBSUB_FRAMES_MAX, flags);
}

/*  Closes every frame held. Safe to call twice.                               */
static inline void zkit__pubsub_frames_close(zkit__pubsub_frames_t *frames)
{
    zkit__recv_close(frames);
}

/*  Parses frames from index first on (1 behind a ROUTER's routing id).
    Returns 0, or -1 with *why set (why may be NULL). Never modifies frames. */
int zkit__pubsub_parse(zkit__pubsub_frames_t *frames, size_t first, zkit__pubsub_msg_t *msg,
                       zkit__pubsub_bad_t *why);

/*  Parses bytes as a decimal uint64: 1 to 20 digits, no sign, no leading
    zero unless it is "0". Returns 0 or -1.                                  */
int zkit__pubsub_parse_uint(const void *data, size_t size, uint64_t *value);

/*  Sends msg (every field checked as parse would) without blocking, behind
    a routing id when rid is not NULL. REPLAY and VALUE send references to
    *msg->topic and *msg->envelope (zmq_msg_copy: the bytes are not copied,
    the caller keeps its frames). Returns 0, or -1 with errno EINVAL (a field
    out of range), ENOMEM, or libzmq's (EAGAIN, EHOSTUNREACH).               */
int zkit__pubsub_send(void *socket, const void *rid, size_t rid_size,
                      const zkit__pubsub_msg_t *msg);

/*  zkit__pubsub_send, and once the message is out, counts it (every frame,
    the routing id too) in *traffic as sent. traffic may be NULL.             */
int zkit__pubsub_send_counted(void *socket, const void *rid, size_t rid_size,
                              const zkit__pubsub_msg_t *msg, zkit__traffic_t *traffic);

/*  What an XPUB hands up (zkit__pubsub_recv_subscription).                  */
typedef enum {
    ZKIT__PUBSUB_SUB_NONE = -1,        /* nothing was waiting                */
    ZKIT__PUBSUB_SUB_OK = 0,           /* a subscribe or an unsubscribe      */
    ZKIT__PUBSUB_SUB_MULTIPART,        /* more than one frame: dropped       */
    ZKIT__PUBSUB_SUB_NOT_SUBSCRIPTION, /* empty, or first byte not 0 or 1    */
    ZKIT__PUBSUB_SUB_REASONS_
} zkit__pubsub_sub_t;

/*  Reads one whole message from an XPUB (libzmq handle) without blocking,
    counts it (every frame) in *traffic as received, and classifies it. For
    ZKIT__PUBSUB_SUB_OK, *frame holds the single frame (byte 0 or 1, then the
    prefix; the caller closes it); for anything else *frame is closed.
    XPUB also hands up what a peer sends that is no subscription: those
    come back as MULTIPART or NOT_SUBSCRIPTION for the caller to count.     */
zkit__pubsub_sub_t zkit__pubsub_recv_subscription(void *xpub, zmq_msg_t *frame,
                                                  zkit__traffic_t *traffic);

/*  The metric label value of a bad subscription reason ("multipart").      */
const char *zkit__pubsub_sub_reason(zkit__pubsub_sub_t why);

/*  One unlabelled metric for a control endpoint's STATS.                    */
typedef struct {
    const char *name;
    bool gauge; /* else a counter                                           */
    uint64_t value;
    const char *help;
} zkit__pubsub_metric_t;

/*  Adds count metrics, each with its help text (a component's STATS map is
    mostly these: a table reads better than a run of pairs of calls).       */
void zkit__pubsub_metrics(zkit__stats_t *stats, const zkit__pubsub_metric_t *metrics, size_t count);

/*  A component's start: makes *ops from config, then *actor running
    handler(args); the actor's setup sets *rc (0 or -1) and *err before it
    signals. Returns 0, or -1 with errno (the ops', the setup's *err, or
    ENOMEM) and nothing left: *ops and *actor destroyed and NULL.           */
int zkit__pubsub_start(const zkit__ops_config_t *config, zkit__ops_t **ops, zactor_t **actor,
                       zactor_fn *handler, void *args, const int *rc, const int *err);

/*  The command's wire name ("FETCH"), or "?".                               */
const char *zkit__pubsub_cmd_name(zkit__pubsub_cmd_t cmd);

/*  A short text for a drop reason ("wrong frame count").                    */
const char *zkit__pubsub_bad_name(zkit__pubsub_bad_t why);

/*  The reason as a metric label value ("frames", "command", ...).         */
const char *zkit__pubsub_bad_reason(zkit__pubsub_bad_t why);

/*  Logs a dropped message at most once a second per *log (the caller's
    rate limiter, zeroed at start), as "ZKIT-PUBSUB-BADFRAME ..."; never the
    bytes themselves.                                                        */
void zkit__pubsub_log_bad(zkit__ratelimit_t *log, const char *component, zkit__pubsub_bad_t why);

/*  True when a frame's bytes may be a topic or a prefix zkit replays: at
    most ZKIT_TOPIC_MAX bytes, no NUL.                                       */
bool zkit__pubsub_topic_valid(const void *data, size_t size);

/*  True when prefix[prefix_size] is a prefix of topic[topic_size].          */
bool zkit__pubsub_prefix_match(const void *prefix, size_t prefix_size, const void *topic,
                               size_t topic_size);

#endif
