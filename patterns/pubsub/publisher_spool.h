/*  publisher_spool.h (internal): a publisher's replay buffer on disk
    (opts.replay_spool_dir), behind the ring in memory.

    Every message the actor handles is appended to a spool as one record
    (docs/pubsub-protocol.md, "Replay spool"), without waiting for an
    fdatasync, and acknowledged at once: nothing downstream confirms a
    publication, so the spool keeps records only by its retention
    (replay_spool_bytes, replay_spool_age_ms). One zkit__pub_spool_sync per
    burst the actor drains makes them durable.

    A spool record carries the epoch and the seq, so the newest record tells
    a restarted publisher where its stream was: it keeps that epoch and goes
    on at seq + 1. The records of one epoch have consecutive spool seqs (one
    append per publication), so message seq s of the current epoch is the
    spool record last_spool - (last_seq - s), checked when read.

    Owned by the publisher's actor thread, except zkit__pub_spool_new, which
    runs in the constructor before the actor starts.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_PUBLISHER_SPOOL_H_INCLUDED
#define ZKIT_PUBSUB_PUBLISHER_SPOOL_H_INCLUDED

#include <stdint.h>
#include <zmq.h>

#include "zkit_publisher.h"

#define ZKIT__PUB_SPOOL_VERSION 1
#define ZKIT__PUB_SPOOL_MESSAGE 'P'

typedef struct zkit__pub_spool zkit__pub_spool_t;

/*  Opens the spool in opts->replay_spool_dir and reads its newest record.
    When that record is of a stream named opts->name, and opts->epoch is 0
    or that record's epoch, the stream goes on: *epoch is its epoch and
    *last_seq its seq. Otherwise *epoch is opts->epoch or now, *last_seq 0,
    and the records already there are of another stream (never served).
    Returns NULL with errno (the error of zkit_spool_new, EBUSY when another
    publisher holds the directory) after a log line.                         */
zkit__pub_spool_t *zkit__pub_spool_new(const zkit_publisher_opts_t *opts, uint64_t *epoch,
                                       uint64_t *last_seq);

/*  Closes the spool (syncs it). Safe on NULL.                               */
void zkit__pub_spool_destroy(zkit__pub_spool_t **self_p);

/*  Appends message seq ([topic][envelope]). A failure is logged (at most
    once a second) and counted; the message is then not in the spool, and a
    FETCH for it gets it from the ring or reports it lost.                   */
void zkit__pub_spool_put(zkit__pub_spool_t *self, uint64_t seq, const zmq_msg_t *topic,
                         const zmq_msg_t *envelope);

/*  Makes what was put durable (one fdatasync) and acknowledges it. Call
    after each burst.                                                         */
void zkit__pub_spool_sync(zkit__pub_spool_t *self);

/*  The oldest seq of the current epoch the spool still holds, or 0.         */
uint64_t zkit__pub_spool_first(zkit__pub_spool_t *self);

/*  Reads message seq into topic and envelope (initialised here; the caller
    closes them). Returns 0, or -1 when it is not in the spool.              */
int zkit__pub_spool_get(zkit__pub_spool_t *self, uint64_t seq, zmq_msg_t *topic,
                        zmq_msg_t *envelope);

#endif
