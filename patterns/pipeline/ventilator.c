/*  ventilator.c: zkit_ventilator_*, the caller's side (see zkit_ventilator.h).

    The actor (ventilator_actor.c) owns the sockets; this file validates
    options, makes and binds the sockets before the actor starts (so a bad
    endpoint is reported synchronously), and turns each call into a pipe
    command. A task's body is copied once, here, into the task struct the
    actor keeps until the task is retired; only its pointer crosses the pipe.

    max_pending is a credit count shared with the actor under a mutex: submit
    takes one credit per task and blocks while none is left; the actor gives
    it back when the task is retired, dead-lettered or (fast mode) sent.

    With a spool (ventilator_spool.h), open, submit and close append their
    record here, in the caller's thread, before the record goes to the
    actor: the call returns success only once the record is in the spool,
    and the caller's thread is the one that waits for the fdatasync. A
    submit takes its credit first, so that a task in the spool is never one
    the caller was told failed; its seq and id are fixed here, since the
    spool must hold them before the actor sees the task.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/ventilator_actor.h"
#include "pipeline/ventilator_spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct _zkit_ventilator_t {
    zactor_t *actor;
    zkit__ventilator_actor_t *state;
    zkit__vqueue_t *queue;
    zkit__vspool_t *spool; /* NULL: memory only */
    zkit__ops_t *ops;      /* control endpoint and security; outlives the actor */
    bool open;             /* a batch is open */
    bool any;              /* a batch was ever opened */
    uint64_t submitted;    /* tasks in the open batch */
    char endpoint[256];
};

/* Submit waits in slices this long, so a signal (zsys_interrupted) ends it. */
#define S_CREDIT_SLICE_MS 200

/* ---- construction ------------------------------------------------------------ */

static int s_check_opts(const zkit_ventilator_opts_t *opts)
{
    if (!opts || !opts->bind || !*opts->bind || (!opts->fast && (!opts->sink || !*opts->sink)) ||
        opts->heartbeat_ms == 0 || opts->liveness == 0 ||
        (opts->name && (!*opts->name || strlen(opts->name) > ZKIT__PIPELINE_NAME_MAX)) ||
        (opts->spool_dir && (opts->fast || !*opts->spool_dir))) {
        zsys_error("ZKIT-PIPE-OPTS ventilator: bind%s, heartbeat_ms and liveness (>0) are "
                   "required; name is 1-%d bytes; spool_dir is for reliable mode only",
                   opts && opts->fast ? "" : ", sink", ZKIT__PIPELINE_NAME_MAX);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* Makes and attaches the sockets in the caller's thread; the actor takes
   them over (zactor_new is a full memory barrier).                          */
static int s_sockets(zkit__ventilator_actor_t *state, zkit__ops_t *ops,
                     const zkit_ventilator_opts_t *opts, char *endpoint, size_t endpoint_size)
{
    zsock_t **workers = zkit__ventilator_actor_socket(state, false);
    zsock_t **sink = zkit__ventilator_actor_socket(state, true);
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    if (opts->fast) {
        /* Tasks handed to the PUSH socket are accepted: linger flushes them. */
        *workers = zkit__socket_new(ZMQ_PUSH, &sopts);
    }
    else {
        /* Per worker, at most its window of tasks plus the heartbeats of one
           liveness period are queued; the HWM only guards against a peer
           that sends and never reads.                                        */
        sopts.linger_ms = ZKIT__PIPELINE_LINGER_SHORT_MS;
        sopts.sndhwm = 2 * ZKIT__PIPELINE_WINDOW_MAX + 1000;
        *workers = zkit__socket_new(ZMQ_ROUTER, &sopts);
        if (*workers)
            zsock_set_router_mandatory(*workers, 1);
    }
    /* Workers connect here: a CURVE/ZAP server when configured.          */
    if (!*workers || zkit__ops_attach(ops, *workers, opts->bind, true))
        return -1;
    if (zkit__socket_last_endpoint(*workers, endpoint, endpoint_size))
        endpoint[0] = '\0';
    if (opts->sink && *opts->sink) {
        zkit__socket_opts_t kopts = ZKIT__SOCKET_OPTS_DEFAULT;
        kopts.linger_ms = ZKIT__PIPELINE_LINGER_SHORT_MS;
        *sink = zkit__socket_new(opts->fast ? ZMQ_PUSH : ZMQ_DEALER, &kopts);
        if (!*sink)
            return -1;
        if (!opts->fast) {
            /* A routing id of our own, the same after a reconnect: the sink
               sends COMPLETE to the id that announced the batch, and must
               still reach us when the connection was made again.  A zero
               first byte is libzmq's; 'V' and 16 random bytes are ours.     */
            uint8_t rid[1 + ZKIT_ID_SIZE] = {'V'};
            zkit_id_generate(rid + 1);
            if (zmq_setsockopt(zsock_resolve(*sink), ZMQ_ROUTING_ID, rid, sizeof rid))
                return -1;
        }
        /* We connect to the sink: a CURVE client of it when configured.   */
        if (zkit__ops_attach(ops, *sink, opts->sink, false))
            return -1;
    }
    return 0;
}

zkit_ventilator_t *zkit_ventilator_new(const zkit_ventilator_opts_t *opts)
{
    if (s_check_opts(opts))
        return NULL;
    zkit_ventilator_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->queue = zkit__vqueue_new(opts->max_pending);
    if (!self->queue)
        goto err;
    if (opts->spool_dir && (self->spool = zkit__vspool_new(opts)) == NULL)
        goto err;
    self->state = zkit__ventilator_actor_new(opts, self->queue, zkit__vspool_spool(self->spool));
    if (!self->state)
        goto err;
    self->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                    .component = ZKIT__VENTILATOR_COMPONENT,
                                                    .name = opts->name,
                                                    .stats_fn = zkit__ventilator_ops_stats,
                                                    .command_fn = zkit__ventilator_ops_command,
                                                    .arg = self->state});
    if (!self->ops)
        goto err;
    zkit__ventilator_actor_set_ops(self->state, self->ops);
    if (s_sockets(self->state, self->ops, opts, self->endpoint, sizeof self->endpoint))
        goto err;
    /* Before the actor starts: what is resumed is in the queue ahead of any
       call the caller makes.                                                */
    size_t resumed = 0;
    if (self->spool && zkit__vspool_resume(self->spool, self->queue, &resumed)) {
        zsys_error("ZKIT-PIPE-SPOOL ventilator: cannot resume from %s: %s", opts->spool_dir,
                   zkit_strerror(errno));
        goto err;
    }
    self->any = resumed > 0;
    self->actor = zactor_new(zkit__ventilator_actor, self->state);
    if (!self->actor) {
        errno = ENOMEM;
        goto err;
    }
    return self;
err : {
    int err = errno;
    zkit__ventilator_actor_destroy(&self->state);
    zkit__ops_destroy(&self->ops);
    zkit__vqueue_destroy(&self->queue);
    zkit__vspool_destroy(&self->spool);
    free(self);
    errno = err;
    return NULL;
}
}

void zkit_ventilator_destroy(zkit_ventilator_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_ventilator_t *self = *self_p;
    /* The actor closes its sockets, with their linger, before it returns. */
    zactor_destroy(&self->actor);
    /* The state releases the tasks it held into the queue: queue last.     */
    zkit__ventilator_actor_destroy(&self->state);
    /* After the actor closed the sockets it secured.                       */
    zkit__ops_destroy(&self->ops);
    zkit__vqueue_destroy(&self->queue);
    /* Last: the actor acknowledged into it until it stopped.               */
    zkit__vspool_destroy(&self->spool);
    free(self);
    *self_p = NULL;
}

/* ---- batches ----------------------------------------------------------------- */

int zkit_ventilator_open(zkit_ventilator_t *self, const char *name)
{
    char generated[ZKIT_BATCH_NAME_MAX + 1];
    if (!name) {
        uint8_t id[ZKIT_ID_SIZE];
        char hex[33];
        zkit_id_generate(id);
        snprintf(generated, sizeof generated, "batch-%s", zkit_id_to_hex(id, hex));
        name = generated;
    }
    if (!zkit__pipeline_batch_valid(name, strlen(name))) {
        errno = EINVAL;
        return -1;
    }
    if (self->open) {
        errno = EBUSY;
        return -1;
    }
    zkit__vqueue_preset_t preset = {.seq = 0};
    if (self->spool && zkit__vspool_open_batch(self->spool, name, &preset.spool_seq))
        return -1;
    if (zkit__vqueue_put_preset(self->queue, ZKIT__VQUEUE_OPEN, name, strlen(name), &preset,
                                ZKIT__VQUEUE_CREDIT_TAKEN)) {
        /* Not opened: the record must not open it after a restart.         */
        zkit__vspool_ack(zkit__vspool_spool(self->spool), preset.spool_seq);
        return -1;
    }
    self->open = true;
    self->any = true;
    self->submitted = 0;
    return 0;
}

/* Credit, then the spool, then the actor: see the top of the file.        */
static int s_submit_spooled(zkit_ventilator_t *self, const void *body, size_t size)
{
    if (zkit__vqueue_reserve(self->queue, &zsys_interrupted, S_CREDIT_SLICE_MS))
        return -1;
    uint8_t id[ZKIT_ID_SIZE];
    zkit_id_generate(id);
    zkit__vqueue_preset_t preset = {
        .seq = self->submitted + 1, .id = id, .ts = zkit_clock_usec(), .spool_seq = 0};
    if (zkit__vspool_task(self->spool, preset.seq, id, preset.ts, body, size, &preset.spool_seq)) {
        int err = errno;
        zkit__vqueue_give(self->queue, 1);
        errno = err;
        return -1;
    }
    if (zkit__vqueue_put_preset(self->queue, ZKIT__VQUEUE_TASK, body, size, &preset,
                                ZKIT__VQUEUE_CREDIT_TAKEN)) {
        /* Refused: its record must not come back as a task after a restart,
           and the next submit reuses its seq.                              */
        int err = errno;
        zkit__vspool_ack(zkit__vspool_spool(self->spool), preset.spool_seq);
        errno = err;
        return -1;
    }
    self->submitted++;
    return 0;
}

int zkit_ventilator_submit(zkit_ventilator_t *self, const void *body, size_t size)
{
    if (!self->open || (size && !body)) {
        errno = EINVAL;
        return -1;
    }
    if (self->submitted >= ZKIT_BATCH_TASKS_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (size > ZKIT__PIPELINE_BODY_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (self->spool)
        return s_submit_spooled(self, body, size);
    if (zkit__vqueue_put(self->queue, ZKIT__VQUEUE_TASK, body, size, &zsys_interrupted,
                         S_CREDIT_SLICE_MS))
        return -1;
    self->submitted++;
    return 0;
}

int zkit_ventilator_close(zkit_ventilator_t *self)
{
    if (!self->open) {
        errno = EINVAL;
        return -1;
    }
    zkit__vqueue_preset_t preset = {.seq = self->submitted};
    if (self->spool && zkit__vspool_close_batch(self->spool, self->submitted, &preset.spool_seq))
        return -1;
    if (zkit__vqueue_put_preset(self->queue, ZKIT__VQUEUE_CLOSE, NULL, 0, &preset,
                                ZKIT__VQUEUE_CREDIT_TAKEN)) {
        zkit__vspool_ack(zkit__vspool_spool(self->spool), preset.spool_seq);
        return -1;
    }
    self->open = false;
    return 0;
}

int zkit_ventilator_wait(zkit_ventilator_t *self, int timeout_ms, zkit_batch_report_t *report)
{
    if (!self->any || self->open) {
        /* Nothing closed to wait for: an open batch cannot end while its
           only submitter waits.                                             */
        if (report)
            zkit__pipeline_call_report(self->actor, report);
        errno = EINVAL;
        return -1;
    }
    return zkit__pipeline_call_wait(self->actor, timeout_ms, report);
}

int zkit_ventilator_report(zkit_ventilator_t *self, zkit_batch_report_t *report)
{
    zkit_batch_report_t ignored;
    return zkit__pipeline_call_report(self->actor, report ? report : &ignored);
}

const char *zkit_ventilator_endpoint(zkit_ventilator_t *self)
{
    return self && self->endpoint[0] ? self->endpoint : NULL;
}

const char *zkit_ventilator_control(zkit_ventilator_t *self)
{
    return self ? zkit__ops_control_endpoint(self->ops) : NULL;
}

int zkit__ventilator_stats(zkit_ventilator_t *self, zkit__ventilator_stats_t *stats)
{
    ssize_t size = zkit__pipeline_call(self->actor, "STATS", NULL, 0, stats, sizeof *stats);
    if (size != (ssize_t) sizeof *stats) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}
