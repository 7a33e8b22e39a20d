/*  replay.h (internal): a publisher's bounded replay buffer.

    A ring of the last messages a publisher sent, keyed by seq. A publisher
    numbers its messages 1, 2, 3, ... so the ring holds one contiguous run of
    seqs [first, last] and finds any of them by arithmetic, without a search.
    It is bounded twice: by a message count and by the bytes of the frames it
    holds; when either is reached the oldest messages are evicted.

    The ring keeps references to the frames the publisher sends (zmq_msg_copy
    shares a frame's bytes instead of copying them), so holding a message
    costs one zmq_msg_t per frame, not a second copy of its body. The replay
    reply sends further references to the same bytes: a replayed envelope is
    the original one, byte for byte.

    Owned by the one thread that runs the publisher; not thread-safe.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_REPLAY_H_INCLUDED
#define ZKIT_PUBSUB_REPLAY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct {
    uint64_t seq;
    zmq_msg_t topic;
    zmq_msg_t envelope;
} zkit__replay_entry_t;

typedef struct _zkit__replay_t zkit__replay_t;

/*  What a range request gets: seqs [from, lost_to] are gone for good
    (lost_to 0: none), [serve_from, serve_to] are held and can be sent
    (serve_to 0: none). Everything above serve_to in the request is either
    not yet published or beyond the batch cap: the requester asks again.     */
typedef struct {
    uint64_t lost_to;
    uint64_t serve_from;
    uint64_t serve_to;
} zkit__replay_plan_t;

/*  Makes an empty buffer holding at most capacity messages (>= 1) and at
    most max_bytes bytes of frames (>= 1). Memory for entries grows as they
    arrive, up to capacity. Returns NULL with errno EINVAL or ENOMEM.        */
zkit__replay_t *zkit__replay_new(size_t capacity, size_t max_bytes);

/*  Closes every frame held, frees the buffer and nulls *self_p. Safe on NULL. */
void zkit__replay_destroy(zkit__replay_t **self_p);

/*  Adds message seq, taking references to topic and envelope (the caller's
    frames stay valid and its own). seq must be last + 1, or anything when the
    buffer has never held a message; a seq that breaks the run empties the
    buffer first (a publisher restarting its numbering). Evicts the oldest
    messages until both bounds hold; a message larger than max_bytes on its
    own empties the buffer and is not kept (it counts as evicted at once).
    Returns 0, or -1 with errno EINVAL (seq 0) or ENOMEM (nothing changed).  */
int zkit__replay_put(zkit__replay_t *self, uint64_t seq, zmq_msg_t *topic, zmq_msg_t *envelope);

/*  The entry holding seq, or NULL when seq is not held (evicted, never put).
    Valid until the next put or destroy.                                     */
const zkit__replay_entry_t *zkit__replay_get(const zkit__replay_t *self, uint64_t seq);

/*  Plans the reply to a request for [from, to] (1 <= from <= to; to may be
    UINT64_MAX, "everything from from"), serving at most max_count messages
    (>= 1). Can't fail.                                                       */
void zkit__replay_plan(const zkit__replay_t *self, uint64_t from, uint64_t to, size_t max_count,
                       zkit__replay_plan_t *plan);

/*  The oldest seq held, the newest seq ever put (0 when none), the number of
    messages held, the bytes of their frames, and the messages evicted so far. */
uint64_t zkit__replay_first(const zkit__replay_t *self);
uint64_t zkit__replay_last(const zkit__replay_t *self);
size_t zkit__replay_count(const zkit__replay_t *self);
size_t zkit__replay_bytes(const zkit__replay_t *self);
uint64_t zkit__replay_evicted(const zkit__replay_t *self);

#endif
