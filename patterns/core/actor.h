/*  actor.h (internal): asking a czmq actor for a fixed-size struct.

    Every zkit device is an actor; its STATS-like calls send one command
    frame on the pipe and get back exactly one frame holding a struct, in
    process. The two halves live here so that every caller treats a signal
    and a broken pipe the same way: a signal never abandons a reply (an
    unread reply would answer the next command), and any failure reads as
    ECANCELED, the actor being gone or stopping.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_ACTOR_H_INCLUDED
#define ZKIT_ACTOR_H_INCLUDED

#include <czmq.h>

/*  Sends command (one frame, without its NUL) and copies the one-frame reply
    into out, which must be exactly size bytes. Returns 0, or -1 with errno
    ECANCELED when the pipe fails or the reply has another size (out is then
    left alone).                                                             */
int zkit__actor_query(zactor_t *actor, const char *command, void *out, size_t size);

/*  The actor's side: sends size bytes of data as the one-frame reply.
    Returns 0, or -1 with errno from libzmq.                                 */
int zkit__actor_reply(zsock_t *pipe, const void *data, size_t size);

/*  For an actor whose setup failed: discards commands until $TERM (or the
    pipe breaks), since zactor_destroy sends $TERM and waits for the answer
    that the actor's return gives.                                           */
void zkit__actor_wait_term(zsock_t *pipe);

#endif
