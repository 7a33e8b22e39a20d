/*  sink_actor.h (internal): the sink actor's state, shared by sink.c (the
    actor) and sink_ops.c (its control endpoint callbacks and the list
    replies of the pipe). Everything here is touched by the actor's thread
    only, once the actor runs.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_SINK_ACTOR_H_INCLUDED
#define ZKIT_PIPELINE_SINK_ACTOR_H_INCLUDED

#include "core/ops.h"
#include "core/ratelimit.h"
#include "pipeline/actor_call.h"
#include "pipeline/pipeline.h"
#include "pipeline/sink_batch.h"

typedef struct {
    zsock_t *pipe;
    zsock_t *sock;    /* ROUTER (reliable) or PULL (fast) */
    zkit__ops_t *ops; /* control endpoint and security; destroyed after sock */
    bool fast;
    int64_t batch_timeout_ms;
    zkit_result_handler_fn *handler;
    void *handler_arg;
    zkit_envelope_t *env;
    zhashx_t *batches;         /* name -> zkit__sink_batch_t */
    zlistx_t *order;           /* names, oldest first (for eviction) */
    zkit__sink_batch_t *first; /* the batch wait and report are about */
    zkit__sink_batch_t *last;  /* the batch of the last result, or NULL */
    zhashx_t *streams;         /* fast mode: src -> last seq */
    uint64_t *last_stream;     /* fast mode: the last result's stream, or NULL */
    char last_src[ZKIT__PIPELINE_NAME_MAX + 1];
    size_t budget; /* table bytes still allowed (S_TABLES_MAX) */
    zkit__pipeline_waiter_t waiter;
    zkit__sink_stats_t stats;
    zkit__traffic_t traffic;     /* sock's: STATS socket="bind" */
    zkit__ratelimit_t total_log; /* ZKIT-PIPE-TOTAL: a peer can repeat it */
    bool terminated;
} zkit__sink_actor_t;

/*  The first batch's report (all zero when there is none yet).              */
void zkit__sink_first_report(zkit__sink_actor_t *self, zkit_batch_report_t *report);

/*  The pipe's DEAD and MISSING requests (frames: the command, then the
    maximum count as a uint64): reply [int64 count][entries].               */
void zkit__sink_reply_dead_letters(zkit__sink_actor_t *self, zkit__pipeline_frames_t *frames);
void zkit__sink_reply_missing(zkit__sink_actor_t *self, zkit__pipeline_frames_t *frames);

/*  The control endpoint's STATS callback (core/control.h); arg is the
    state. The sink has no PAUSE: results are acknowledged only once
    stored, so not reading would only make every worker resend.            */
void zkit__sink_ops_stats(zkit__stats_t *stats, void *arg);

#endif
