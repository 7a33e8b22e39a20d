/*  worker_actor.h (internal): the worker actor's state, shared by
    worker_actor.c (the socket thread) and worker_stats.c (its control
    endpoint callbacks, which run on that same thread).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_WORKER_ACTOR_H_INCLUDED
#define ZKIT_PIPELINE_WORKER_ACTOR_H_INCLUDED

#include "core/ops.h"
#include "pipeline/worker_internal.h"

/* A DONE or FAIL waiting for the ventilator link. */
typedef struct zkit__worker_out {
    struct zkit__worker_out *next;
    zkit__pipeline_cmd_t cmd;
    uint8_t id[ZKIT_ID_SIZE];
    char reason[];
} zkit__worker_out_t;

struct zkit__worker_actor {
    zkit__worker_setup_t *setup;
    zsock_t *pipe;
    zkit_envelope_t *env;    /* decodes tasks to check them (and run them, inline) */
    zkit_envelope_t *result; /* inline: the result of the task being run */
    zmq_msg_t held;          /* inline: an encoded result the sink did not take yet */
    bool has_held;
    uint32_t *slots;      /* ring of handler indices: one entry per job that
                             handler may be given now */
    size_t slot_capacity; /* window x depth */
    size_t slot_head;
    size_t slot_count;
    zkit__worker_job_t *queue_head; /* tasks waiting for a handler */
    zkit__worker_job_t *queue_tail;
    size_t queued;
    zhashx_t *pending; /* hex task id -> job whose RESULT awaits its ACK */
    zkit__worker_out_t *out_head;
    zkit__worker_out_t *out_tail;
    size_t out_count;
    zkit__worker_job_t *fast_head; /* fast mode: results waiting for the PUSH socket */
    zkit__worker_job_t *fast_tail;
    size_t fast_count;
    uint64_t seq; /* results sent: the seq of the last one */
    int64_t silence_ms;
    int64_t last_recv;
    int64_t last_send;
    int64_t reconnect_at;
    unsigned backoff;
    int64_t next_resend;
    zhashx_t *streams; /* fast mode: src -> last seq seen */
    zkit_worker_stats_t stats;
    zkit__worker_stats_t istats;
    zkit__traffic_t traffic_vent; /* STATS socket="ventilator", every link made */
    zkit__traffic_t traffic_sink; /* STATS socket="sink" */
    /* PAUSE (control endpoint): take no new task. Set by the command
       callback; the loop applies it (worker_actor.c, s_apply_pause).       */
    bool paused;
    bool link_paused; /* reliable: the ventilator link was closed for it */
    bool terminated;
};

/*  The control endpoint's callbacks (core/control.h); arg is the setup,
    whose actor field points at the running actor's state (NULL before it
    runs). Both run on the actor's thread.                                   */
void zkit__worker_ops_stats(zkit__stats_t *stats, void *arg);
zkit__control_result_t zkit__worker_ops_command(const char *command, const char *args, char *reply,
                                                size_t reply_size, void *arg);

#endif
