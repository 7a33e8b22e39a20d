/*  recv.h (internal): receive one whole multipart message into a fixed set
    of frames, whatever the peer sends.

    Every protocol reads "at most N frames of one message": the frames past
    the N-th are still read (so the socket stays in step with the message
    boundaries) but closed at once and only counted, and the bytes of every
    frame are added up for the traffic counters. Nothing is allocated from
    what a peer declares: the storage is the fixed part[] array, and libzmq
    has already bounded each frame (ZMQ_MAXMSGSIZE).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_RECV_H_INCLUDED
#define ZKIT_RECV_H_INCLUDED

#include <stddef.h>

#include <zmq.h>

/*  The most frames any zkit protocol keeps of one message (the balancer's
    32: routing ids plus content). A protocol passes its own, lower, limit. */
#define ZKIT__RECV_PARTS_MAX 32

/*  One whole received message. The same struct serves to build a message to
    send (pipeline): only part[0, count) is ever initialised.                */
typedef struct {
    zmq_msg_t part[ZKIT__RECV_PARTS_MAX];
    size_t count;   /* frames held (initialised) in part                      */
    size_t dropped; /* frames beyond the limit, read and discarded            */
    size_t bytes;   /* of every frame received, the discarded ones too: what
                       the wire carried, for zkit__traffic_in                 */
} zkit__recv_t;

/*  Receives one whole message from a libzmq socket handle (zsock_resolve a
    zsock_t first) with flags for the first frame (ZMQ_DONTWAIT or 0); the
    later frames of a message are delivered with the first, so they are read
    without waiting. Keeps the first max frames (max is clamped to 1 ..
    ZKIT__RECV_PARTS_MAX) and counts the rest in dropped.
    Returns 0 with msg filled: the caller owns part[0, count) and closes them
    (zkit__recv_close). Returns -1 with errno from libzmq (EAGAIN: nothing
    waiting; ETERM, ENOTSOCK...) and nothing held (count 0): a first frame
    that fails leaves the socket as it was; a later frame interrupted by a
    signal (EINTR) is read again, and any other error part way closes every
    frame already read.                                                      */
int zkit__recv(void *handle, zkit__recv_t *msg, size_t max, int flags);

/*  Closes every frame held (count becomes 0, dropped 0). Safe to call twice
    and on a message zkit__recv failed to fill.                              */
void zkit__recv_close(zkit__recv_t *msg);

#endif
