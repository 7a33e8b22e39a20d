/*  ventilator_actor.h (internal): the ventilator actor's state, shared by
    ventilator_actor.c (sockets, tasks, workers, the sink's messages) and
    ventilator_batch.c (batches and their announcements to the sink). Both
    run on the actor's thread only.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_VENTILATOR_ACTOR_H_INCLUDED
#define ZKIT_PIPELINE_VENTILATOR_ACTOR_H_INCLUDED

#include "core/ops.h"
#include "pipeline/ventilator_internal.h"
#include "zkit_spool.h"

#define ZKIT__VENTILATOR_COMPONENT "ventilator"

/* A worker's routing id, as the peers table keeps it. */
typedef struct {
    size_t size;
    uint8_t data[ZKIT__DISPATCHER_PEER_MAX];
} zkit__vrid_t;

struct zkit__ventilator_batch {
    char name[ZKIT_BATCH_NAME_MAX + 1];
    uint64_t submitted; /* the highest task seq so far */
    uint64_t received;  /* tasks the actor took for it (fewer than submitted
                           when resumed from a spool: some were retired) */
    uint64_t total;     /* known once closed */
    bool closed;
    bool complete;
    uint64_t done, dead, retried;
    uint64_t started_us;
    uint64_t elapsed_us;           /* set at completion */
    size_t refs;                   /* live tasks and pending announcements */
    size_t announcing;             /* announcements the sink has not confirmed */
    void *handle;                  /* in the batches list */
    zkit__ventilator_task_t *live; /* reliable mode: tasks the dispatcher holds */
    uint64_t spool_open;           /* spool seqs of its OPEN and CLOSE records */
    uint64_t spool_close;
};

/* A BATCH or DEAD the sink has not confirmed yet. */
typedef struct {
    zkit__pipeline_cmd_t cmd;
    zkit__ventilator_batch_t *batch;
    uint64_t total;
    uint8_t task_id[ZKIT_ID_SIZE];
    uint64_t task_seq;
    uint32_t attempts;
    uint64_t spool_seq; /* DEAD: the task's record, acknowledged on OK */
    char reason[ZKIT__PIPELINE_REASON_MAX + 1];
} zkit__vannounce_t;

struct zkit__ventilator_actor {
    zsock_t *pipe;
    bool fast;
    char name[ZKIT__PIPELINE_NAME_MAX + 1];
    int64_t heartbeat_ms;
    zsock_t *workers; /* ROUTER (reliable) or PUSH (fast) */
    zsock_t *sink;    /* DEALER (reliable), PUSH (fast) or NULL */
    zkit__dispatcher_t *dispatcher;
    zkit_envelope_t *env;
    zlistx_t *batches; /* zkit__ventilator_batch_t, oldest first */
    zkit__ventilator_batch_t *current;
    zhashx_t *announcements;             /* token -> zkit__vannounce_t */
    zhashx_t *peers;                     /* hex routing id -> routing id: the workers
                                            the dispatcher knows (expired ones are
                                            drained right after next/tick) */
    zkit__ventilator_task_t *queue_head; /* fast mode: not yet sent */
    zkit__ventilator_task_t *queue_tail;
    int64_t next_heartbeat;
    zkit__pipeline_waiter_t waiter;
    zkit__vqueue_t *queue;
    zkit_spool_t *spool;                 /* the caller's (opts.spool_dir), or NULL */
    uint64_t credit_back;                /* tasks ended this loop turn: credits to give */
    zkit__ventilator_batch_t *env_batch; /* the batch whose src and name env holds */
    zkit__ventilator_stats_t stats;
    zkit__traffic_t traffic_workers; /* STATS socket="workers" */
    zkit__traffic_t traffic_sink;    /* STATS socket="sink" */
    zkit__ops_t *ops;                /* the caller's: control endpoint and security */
    bool paused;                     /* PAUSE: hand out no task until RESUME */
    bool terminated;
};

/* ---- ventilator_batch.c ------------------------------------------------------- */

/*  Drops a reference on batch; frees it when none is left and it is not the
    current batch (it is then complete: its spool records are acknowledged). */
void zkit__vbatch_unref(zkit__ventilator_actor_t *self, zkit__ventilator_batch_t *batch);

/*  The current batch's report (all zero when there is none).                */
void zkit__vbatch_report(zkit__ventilator_actor_t *self, zkit_batch_report_t *report);

/*  Sends an announcement (calloc'ed; taken over) and, in reliable mode, keeps
    it until the sink confirms it, holding a reference on its batch.         */
void zkit__vbatch_announce(zkit__ventilator_actor_t *self, zkit__vannounce_t *a);

/*  The sink's OK for token.                                                 */
void zkit__vbatch_confirmed(zkit__ventilator_actor_t *self, const char *token);

/*  Sends every announcement not confirmed yet again (each heartbeat).      */
void zkit__vbatch_resend(zkit__ventilator_actor_t *self);

/*  A queue record's OPEN (record: name and spool seq) and CLOSE (record:
    seq, the total when not 0, and spool seq).                               */
void zkit__vbatch_open(zkit__ventilator_actor_t *self, const zkit__ventilator_task_t *record);
void zkit__vbatch_close(zkit__ventilator_actor_t *self, const zkit__ventilator_task_t *record);

/*  Marks the current batch complete when it is.                             */
void zkit__vbatch_check_complete(zkit__ventilator_actor_t *self);

/*  A zhashx/zlistx destructor that frees the item.                          */
void zkit__vbatch_free_item(void **item_p);

/* ---- ventilator_stats.c ------------------------------------------------------- */

/*  The control endpoint's callbacks (core/control.h); arg is the actor's
    state. Both run on the actor's thread.                                   */
void zkit__ventilator_ops_stats(zkit__stats_t *stats, void *arg);
zkit__control_result_t zkit__ventilator_ops_command(const char *command, const char *args,
                                                    char *reply, size_t reply_size, void *arg);

#endif
