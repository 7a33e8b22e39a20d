/*  protocol.h (internal): the frames of ZKIT-BALANCER/1.

    docs/balancer-protocol.md is the contract; this file turns it into code.
    On the backend the balancer speaks the Paranoid Pirate Protocol (ZeroMQ
    RFC 6): single-byte commands READY (0x01) and HEARTBEAT (0x02), requests
    and replies as [address...][empty][content...]. zkit workers add a credit
    frame to READY and two commands of their own, NACK (0x03) and DISCONNECT
    (0x04). On the frontend a request is whatever a REQ socket sends:
    [address...][empty][content...].

    A message is received whole into a zkit__bal_msg_t (a fixed array of
    zmq_msg_t: no allocation per frame beyond what libzmq does), then parsed
    from a view of its frames (zkit__bal_frame_t) with every field checked;
    the parsers are pure functions, so tests feed them any bytes. A message
    that fails is dropped by the caller and counted under one
    zkit_balancer_bad_t reason.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BALANCER_PROTOCOL_H_INCLUDED
#define ZKIT_BALANCER_PROTOCOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "core/recv.h"
#include "core/traffic.h"
#include "zkit_balancer.h"
#include "zkit_envelope.h"

/* Command bytes. READY and HEARTBEAT are RFC 6's; NACK and DISCONNECT are
   zkit's own and only zkit workers send them.                               */
#define ZKIT__BAL_CMD_READY      0x01
#define ZKIT__BAL_CMD_HEARTBEAT  0x02
#define ZKIT__BAL_CMD_NACK       0x03
#define ZKIT__BAL_CMD_DISCONNECT 0x04

/* Limits on what a peer may send. A client's address stack holds the
   ROUTER's routing id plus up to 7 addresses added by proxies on the way.   */
#define ZKIT__BAL_ROUTE_MAX  8    /* address frames before the empty delimiter */
#define ZKIT__BAL_PARTS_MAX  16   /* content frames of a request or reply      */
#define ZKIT__BAL_FRAMES_MAX 32   /* frames of any message, routing ids included */
#define ZKIT__BAL_CREDIT_MAX 1000 /* a zkit worker's READY credit               */
#define ZKIT__BAL_DIGITS_MAX 4    /* digits of the credit frame                 */

/* A balancer's error reply to a plain client is one frame that starts with
   this text, then " REASON ATTEMPTS" ("ZKIT-ERROR PEER_DIED 3").             */
#define ZKIT__BAL_ERROR_PREFIX "ZKIT-ERROR"

/* Headers the balancer reads and writes in envelopes it makes.              */
#define ZKIT__BAL_HDR_ERROR    "zkit-error"    /* str: why the request failed  */
#define ZKIT__BAL_HDR_ATTEMPTS "zkit-attempts" /* int: attempts it had          */
#define ZKIT__BAL_HDR_PART     "zkit-part-"    /* bin: content part n >= 2      */

/*  A borrowed view of one frame.                                            */
typedef struct {
    const void *data;
    size_t size;
} zkit__bal_frame_t;

/*  One whole received message: at most ZKIT__BAL_FRAMES_MAX frames held,
    the rest counted in dropped (core/recv.h).                               */
typedef zkit__recv_t zkit__bal_msg_t;
_Static_assert(ZKIT__BAL_FRAMES_MAX <= ZKIT__RECV_PARTS_MAX, "a message fits a zkit__recv_t");

typedef enum {
    ZKIT__BAL_READY = 1,
    ZKIT__BAL_HEARTBEAT,
    ZKIT__BAL_NACK,
    ZKIT__BAL_DISCONNECT,
    ZKIT__BAL_REQUEST, /* to a worker: [handle][empty][content...] */
    ZKIT__BAL_REPLY,   /* from a worker: the same shape             */
} zkit__bal_cmd_t;

/*  A parsed backend message, either direction.                              */
typedef struct {
    zkit__bal_cmd_t cmd;
    bool zkit;                /* READY: a credit frame came, so a zkit worker */
    uint32_t credit;          /* READY: 1 for an RFC 6 worker                 */
    uint8_t id[ZKIT_ID_SIZE]; /* NACK, REQUEST, REPLY: the request handle     */
    size_t first_part;        /* REQUEST, REPLY: index of the first content frame */
    size_t parts;             /* REQUEST, REPLY: content frames (>= 1)        */
} zkit__bal_backend_msg_t;

/*  A parsed frontend message: frames [0, route) are the client's address
    stack (the ROUTER's routing id first), frame route is the empty
    delimiter, then parts content frames.                                    */
typedef struct {
    size_t route;
    size_t first_part;
    size_t parts;
} zkit__bal_client_msg_t;

/* ---- receiving --------------------------------------------------------------- */

/*  Receives one whole message from a libzmq socket handle with flags
    (ZMQ_DONTWAIT). Returns 0 with msg filled (the caller closes it; its
    bytes, for the traffic counters, cover every frame), or -1 with errno
    from libzmq (EAGAIN: nothing waiting) and nothing held. zkit__recv with
    this protocol's limit.                                                    */
static inline int zkit__bal_recv(void *handle, zkit__bal_msg_t *msg, int flags)
{
    return zkit__recv(handle, msg, ZKIT__BAL_FRAMES_MAX, flags);
}

/*  Closes every frame held. Safe to call twice.                             */
static inline void zkit__bal_msg_close(zkit__bal_msg_t *msg)
{
    zkit__recv_close(msg);
}

/*  Fills view[i] for every frame held from index first on; returns how many. */
size_t zkit__bal_msg_view(zkit__bal_msg_t *msg, size_t first, zkit__bal_frame_t *view);

/* ---- parsing (pure: no sockets, no allocation) ----------------------------- */

/*  Parses what a worker sent, behind its routing id (frames exclude it):
      1 frame  [cmd]           READY (RFC 6: credit 1), HEARTBEAT, DISCONNECT
      2 frames [cmd][arg]      READY + credit (zkit), NACK + handle (zkit)
      3+       [handle][empty][content...]   REPLY
    Returns 0 with *out filled, or -1 with *why set: FRAMES (none, or a
    command with the wrong frame count, or too many content frames), COMMAND
    (unknown command byte, or a command frame that is not one byte), FIELD
    (credit not 1..1000 in plain decimal, handle not 16 bytes), ROUTE (the
    frame after the handle is not empty).                                     */
int zkit__bal_parse_worker(const zkit__bal_frame_t *frames, size_t count,
                           zkit__bal_backend_msg_t *out, zkit_balancer_bad_t *why);

/*  Parses what the balancer sent to a worker (the worker's DEALER sees no
    routing id): [0x02] HEARTBEAT, or [handle][empty][content...] REQUEST.
    Returns 0, or -1 with *why set as parse_worker does.                      */
int zkit__bal_parse_balancer(const zkit__bal_frame_t *frames, size_t count,
                             zkit__bal_backend_msg_t *out, zkit_balancer_bad_t *why);

/*  Parses what a client sent, routing id included: [address...][empty]
    [content...]. Returns 0, or -1 with *why set: ROUTE (no empty delimiter,
    or more than ZKIT__BAL_ROUTE_MAX addresses), FRAMES (no content frame, or
    more than ZKIT__BAL_PARTS_MAX).                                           */
int zkit__bal_parse_client(const zkit__bal_frame_t *frames, size_t count,
                           zkit__bal_client_msg_t *out, zkit_balancer_bad_t *why);

/*  Parses a credit frame: 1 to 4 digits, no sign, no leading zero, value
    1..ZKIT__BAL_CREDIT_MAX. Returns 0 or -1.                                 */
int zkit__bal_parse_credit(const void *data, size_t size, uint32_t *credit);

/* ---- sending ------------------------------------------------------------------ */

/*  Sends count frames as one message without blocking, then closes every one
    of them (sent or not). A message sent is counted in traffic (out, every
    frame's bytes) unless traffic is NULL (inproc pipes). Returns 0, or -1
    with errno from libzmq: EAGAIN (peer at its high-water mark, or a DEALER
    with no peer), EHOSTUNREACH (a ROUTER_MANDATORY socket that does not
    know the peer).                                                          */
int zkit__bal_send(void *handle, zmq_msg_t *frames, size_t count, zkit__traffic_t *traffic);

/*  Initialises frame with a copy of size bytes. Returns 0, or -1 with errno
    ENOMEM.                                                                  */
int zkit__bal_frame_set(zmq_msg_t *frame, const void *data, size_t size);

/*  Sends a one-byte command, behind rid when it is not NULL, and for READY
    (credit > 0) and NACK (id not NULL) with their argument frame. Counts
    and returns as zkit__bal_send.                                            */
int zkit__bal_send_command(void *handle, const void *rid, size_t rid_size, uint8_t cmd,
                           uint32_t credit, const uint8_t *id, zkit__traffic_t *traffic);

/*  "READY", "HEARTBEAT", ..., or "?".                                       */
const char *zkit__bal_cmd_name(zkit__bal_cmd_t cmd);

#endif
