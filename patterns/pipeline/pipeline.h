/*  pipeline.h (internal): counters of the pipeline components, for stats and
    white-box tests.

    Each component counts what it dropped (per reason) and the protocol events
    that are not errors but say something about the peers. The numbers are
    read over the actor pipe, so they are a consistent snapshot.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_PIPELINE_H_INCLUDED
#define ZKIT_PIPELINE_PIPELINE_H_INCLUDED

#include "core/dispatcher.h"
#include "pipeline/protocol.h"
#include "zkit_sink.h"
#include "zkit_ventilator.h"
#include "zkit_worker.h"

/* Socket linger of links whose messages are only useful while both ends run
   (heartbeats, acks that a peer resends anyway): long enough to flush to a
   live peer, short enough that a destroy never hangs on a dead one.         */
#define ZKIT__PIPELINE_LINGER_SHORT_MS 1000

/* Component names (meta src) are at most this long.                        */
#define ZKIT__PIPELINE_NAME_MAX 255

/* A task body or result body must leave room for the envelope's own fields
   within the receivers' 16 MiB frame limit.                                 */
#define ZKIT__PIPELINE_BODY_MAX (16u * 1024 * 1024 - 4096)

typedef struct {
    zkit__pipeline_bad_t bad;
    uint64_t readies;        /* READY received */
    uint64_t disconnects;    /* DISCONNECT sent to unknown peers */
    uint64_t duplicate_done; /* DONE for a task not held (late duplicate) */
    uint64_t stale_fail;     /* FAIL for an attempt that had already ended */
    uint64_t send_failed;    /* TASK that could not be sent (peer gone or full) */
    uint64_t oks;            /* OK received for a pending announcement */
    uint64_t completes;      /* COMPLETE received (each one answered with OK) */
    uint64_t sink_retired;   /* tasks retired by a COMPLETE, not by a DONE */
    uint64_t peers;          /* workers known now */
    zkit__dispatcher_counters_t dispatcher;
} zkit__ventilator_stats_t;

typedef struct {
    zkit__pipeline_bad_t bad;
    uint64_t readies;       /* READY sent */
    uint64_t disconnects;   /* DISCONNECT received */
    uint64_t heartbeats_in; /* HEARTBEAT received from the ventilator */
    uint64_t results_sent;  /* RESULT sends, resends included */
    uint64_t acks;          /* ACK for a pending result */
    uint64_t acks_unknown;  /* ACK for no pending result (duplicate) */
    uint64_t abandoned;     /* results given up unacknowledged (FAIL sent) */
    uint64_t overloaded;    /* tasks refused with FAIL: local queue full */
} zkit__worker_stats_t;

typedef struct {
    zkit__pipeline_bad_t bad;
    uint64_t results;    /* RESULT (or fast-mode envelopes) received */
    uint64_t stored;     /* handler accepted */
    uint64_t refused;    /* handler returned -1 */
    uint64_t duplicates; /* results for a task already stored */
    uint64_t acks;       /* ACK sent */
    uint64_t oks;        /* OK sent */
    uint64_t completes;  /* COMPLETE sends, resends included */
    uint64_t confirmed;  /* COMPLETE confirmed by the ventilator (OK) */
    uint64_t completing; /* batches whose COMPLETE awaits its OK, now */
    uint64_t dead;       /* distinct dead letters recorded */
    uint64_t batches;    /* batches tracked now */
} zkit__sink_stats_t;

/*  Snapshots of the counters. Return 0, or -1 with errno ECANCELED.          */
int zkit__ventilator_stats(zkit_ventilator_t *self, zkit__ventilator_stats_t *stats);
int zkit__worker_stats(zkit_worker_t *self, zkit__worker_stats_t *stats);
int zkit__sink_stats(zkit_sink_t *self, zkit__sink_stats_t *stats);

#endif
