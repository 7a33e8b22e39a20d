/*  worker.c: zkit_worker_*, construction and the handler threads (see
    zkit_worker.h; the socket thread is worker_actor.c).

    The constructor makes every socket, starts the window handler threads
    and waits until each has said READY on the inproc link, so the actor
    starts with every handler known and idle, and a failure is reported by
    zkit_worker_new itself. A fast worker with a window of 1 has no handler
    thread: its actor runs the handler itself (zkit__worker_run), since
    there is no heartbeat a long task could hold up and no other task that
    could run beside it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/worker_actor.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct _zkit_worker_t {
    zactor_t *actor;
    zkit__worker_setup_t setup;
};

/* Handlers said READY within this time, or the worker does not start.      */
#define S_HANDLER_START_MS 10000

static atomic_uint s_worker_count;

/* ---- handler threads --------------------------------------------------------- */

/* Stamps what the protocol requires on a result: corr, batch, task-seq, att
   and src. Returns 0, or -1 when out of memory.                             */
static int s_stamp(zkit_envelope_t *result, const zkit_envelope_t *task, const char *name)
{
    zkit_value_t batch;
    if (zkit_envelope_set_corr(result, zkit_envelope_id(task), ZKIT_ID_SIZE) ||
        zkit_envelope_set_header_int(result, "task-seq", (int64_t) zkit_envelope_seq(task)) ||
        zkit_envelope_set_src(result, name))
        return -1;
    /* The attempt that produced it, so the sink can count retries.         */
    zkit_envelope_set_att(result, zkit_envelope_att(task));
    if (zkit_envelope_batch(task, &batch) == 0) {
        /* Keep the task's form (str or bin): the sink reads either.         */
        if (batch.type == ZKIT_VALUE_BIN)
            return zkit_envelope_set_batch(result, batch.data, batch.size);
        char text[ZKIT_BATCH_NAME_MAX + 1];
        size_t n = batch.size < ZKIT_BATCH_NAME_MAX ? batch.size : ZKIT_BATCH_NAME_MAX;
        memcpy(text, batch.data, n);
        text[n] = '\0';
        return zkit_envelope_set_batch_str(result, text);
    }
    return 0;
}

int zkit__worker_run(zkit_task_handler_fn *handler, void *handler_arg, const char *name,
                     const zkit_envelope_t *task, zkit_envelope_t *result,
                     char reason[ZKIT__PIPELINE_REASON_MAX + 1])
{
    char text[ZKIT__PIPELINE_REASON_MAX + 1] = "";
    int rc = handler(task, result, text, sizeof text, handler_arg);
    text[sizeof text - 1] = '\0';
    if (rc == 0 && s_stamp(result, task, name) == 0)
        return 0;
    zkit__pipeline_copy_text(reason, ZKIT__PIPELINE_REASON_MAX + 1,
                             rc != 0 ? (text[0] ? text : "handler failed")
                                     : "worker out of memory");
    return -1;
}

static void s_run(zkit__worker_handler_t *h, zkit_envelope_t *task, zkit__worker_job_t *job)
{
    job->rc = -1;
    job->reason[0] = '\0';
    if (zkit_envelope_decode_bytes(task, zmq_msg_data(&job->task), zmq_msg_size(&job->task))) {
        /* The actor decoded it already; this cannot happen, but say so.     */
        snprintf(job->reason, sizeof job->reason, "task does not decode: %s",
                 zkit_envelope_error_detail(task));
        return;
    }
    zkit_envelope_t *result = zkit_envelope_new();
    if (!result) {
        snprintf(job->reason, sizeof job->reason, "worker out of memory");
        return;
    }
    if (zkit__worker_run(h->handler, h->handler_arg, h->name, task, result, job->reason) == 0) {
        job->result = result;
        job->rc = 0;
        return;
    }
    zkit_envelope_destroy(&result);
}

/* A send a signal does not cut short, on the handler's own link.          */
static int s_send(void *sock, const void *data, size_t size, int flags)
{
    while (zmq_send(sock, data, size, flags) == -1)
        if (errno != EINTR)
            return -1;
    return 0;
}

void *zkit__worker_handler_run(void *arg)
{
    zkit__worker_handler_t *h = arg;
    void *sock = zsock_resolve(h->sock);
    zkit_envelope_t *task = zkit_envelope_new();
    if (task && s_send(sock, "READY", 5, 0) == 0) {
        for (;;) {
            zkit__pipeline_frames_t frames;
            if (zkit__pipeline_recv(h->sock, &frames, 0)) {
                if (errno == EINTR)
                    continue;
                break;
            }
            zkit__worker_job_t *job = NULL;
            if (frames.count == 1 && zmq_msg_size(&frames.part[0]) == sizeof job)
                memcpy(&job, zmq_msg_data(&frames.part[0]), sizeof job);
            zkit__pipeline_frames_close(&frames);
            if (!job)
                break; /* STOP */
            s_run(h, task, job);
            zkit_envelope_reset(task); /* lets go of the task frame */
            if (s_send(sock, &job, sizeof job, 0)) {
                zkit__worker_job_free(job);
                break;
            }
        }
    }
    zkit_envelope_destroy(&task);
    return NULL;
}

void zkit__worker_job_free(zkit__worker_job_t *job)
{
    if (!job)
        return;
    zmq_msg_close(&job->task);
    if (job->has_encoded)
        zmq_msg_close(&job->encoded);
    zkit_envelope_destroy(&job->result);
    free(job);
}

/* ---- sockets --------------------------------------------------------------------- */

zsock_t *zkit__worker_vent_socket(const zkit__worker_setup_t *setup)
{
    zkit__socket_opts_t opts = ZKIT__SOCKET_OPTS_DEFAULT;
    /* A PULL sends nothing; a DEALER's DONE and FAIL are worth a short flush,
       and a task whose DONE is lost is merely run again.                     */
    opts.linger_ms = setup->fast ? 0 : ZKIT__PIPELINE_LINGER_SHORT_MS;
    zsock_t *sock = zkit__socket_new(setup->fast ? ZMQ_PULL : ZMQ_DEALER, &opts);
    if (!sock)
        return NULL;
    /* A CURVE client of the ventilator when configured.                    */
    if (zkit__ops_attach(setup->ops, sock, setup->connect, false)) {
        int err = errno;
        zkit__socket_close(&sock, 0);
        errno = err;
        return NULL;
    }
    return sock;
}

static int s_handler_sockets(zkit__worker_setup_t *setup)
{
    char endpoint[64];
    zkit__socket_inproc_endpoint(endpoint, sizeof endpoint, "worker");
    /* In-process links carry at most window jobs each way: no HWM needed. */
    zkit__socket_opts_t opts = {.linger_ms = 0, .sndhwm = 0, .rcvhwm = 0, .maxmsgsize = -1};
    setup->handlers = zkit__socket_new(ZMQ_ROUTER, &opts);
    if (!setup->handlers || zkit__socket_attach(setup->handlers, endpoint, true))
        return -1;
    zsock_set_router_mandatory(setup->handlers, 1);
    for (uint32_t i = 0; i < setup->window; i++) {
        zkit__worker_handler_t *h = &setup->threads[i];
        h->rid[0] = 'h';
        h->rid[1] = (uint8_t) (i >> 24);
        h->rid[2] = (uint8_t) (i >> 16);
        h->rid[3] = (uint8_t) (i >> 8);
        h->rid[4] = (uint8_t) i;
        h->sock = zkit__socket_new(ZMQ_DEALER, &opts);
        if (!h->sock ||
            zmq_setsockopt(zsock_resolve(h->sock), ZMQ_ROUTING_ID, h->rid, sizeof h->rid) ||
            zkit__socket_attach(h->sock, endpoint, false))
            return -1;
    }
    return 0;
}

/* Waits for READY from count handler threads. Returns 0 or -1.             */
static int s_collect_ready(zkit__worker_setup_t *setup, uint32_t count)
{
    zsock_set_rcvtimeo(setup->handlers, S_HANDLER_START_MS);
    for (uint32_t seen = 0; seen < count;) {
        zkit__pipeline_frames_t frames;
        if (zkit__pipeline_recv(setup->handlers, &frames, 0)) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (frames.count == 2 && zmq_msg_size(&frames.part[1]) == 5)
            seen++;
        zkit__pipeline_frames_close(&frames);
    }
    zsock_set_rcvtimeo(setup->handlers, -1);
    return 0;
}

void zkit__worker_stop_handlers(zkit__worker_setup_t *setup)
{
    for (uint32_t i = 0; i < setup->window; i++) {
        zkit__worker_handler_t *h = &setup->threads[i];
        if (h->started && setup->handlers) {
            zmq_send(zsock_resolve(setup->handlers), h->rid, sizeof h->rid, ZMQ_SNDMORE);
            zmq_send(zsock_resolve(setup->handlers), "STOP", 4, 0); /* not a pointer */
        }
    }
    for (uint32_t i = 0; i < setup->window; i++) {
        zkit__worker_handler_t *h = &setup->threads[i];
        if (h->started)
            pthread_join(h->thread, NULL);
        h->started = false;
    }
}

static void s_setup_free(zkit__worker_setup_t *setup)
{
    if (setup->threads) {
        zkit__worker_stop_handlers(setup);
        for (uint32_t i = 0; i < setup->window; i++)
            zkit__socket_close(&setup->threads[i].sock, 0);
    }
    /* Jobs still in the ROUTER's queue were drained by the actor.           */
    zkit__socket_close(&setup->handlers, 0);
    zkit__socket_close(&setup->vent, ZKIT__LINGER_KEEP);
    zkit__socket_close(&setup->sink, ZKIT__LINGER_KEEP);
    free(setup->threads);
    free(setup->connect);
    free(setup->sink_endpoint);
    /* Last: every socket it secured is closed.                             */
    zkit__ops_destroy(&setup->ops);
}

/* ---- API ------------------------------------------------------------------------- */

static int s_check_opts(const zkit_worker_opts_t *o)
{
    if (!o || !o->connect || !*o->connect || !o->sink || !*o->sink || !o->handler ||
        o->window < 1 || o->window > ZKIT__PIPELINE_WINDOW_MAX || o->heartbeat_ms == 0 ||
        o->liveness == 0 || o->reconnect_ms == 0 ||
        (o->name && (!*o->name || strlen(o->name) > ZKIT__PIPELINE_NAME_MAX))) {
        zsys_error("ZKIT-PIPE-OPTS worker: connect, sink and handler are required; window is "
                   "1-%d; heartbeat_ms, liveness and reconnect_ms are > 0; name is 1-%d bytes",
                   ZKIT__PIPELINE_WINDOW_MAX, ZKIT__PIPELINE_NAME_MAX);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

zkit_worker_t *zkit_worker_new(const zkit_worker_opts_t *opts)
{
    if (s_check_opts(opts))
        return NULL;
    zkit_worker_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    zkit__worker_setup_t *setup = &self->setup;
    setup->fast = opts->fast;
    setup->window = opts->window;
    setup->heartbeat_ms = opts->heartbeat_ms;
    setup->liveness = opts->liveness;
    setup->reconnect_ms = opts->reconnect_ms;
    if (opts->name)
        snprintf(setup->name, sizeof setup->name, "%s", opts->name);
    else
        snprintf(setup->name, sizeof setup->name, "worker-%d-%u", (int) getpid(),
                 atomic_fetch_add(&s_worker_count, 1) + 1);
    setup->connect = strdup(opts->connect);
    setup->sink_endpoint = strdup(opts->sink);
    setup->inline_handler = setup->fast && setup->window == 1;
    setup->handler = opts->handler;
    setup->handler_arg = opts->handler_arg;
    setup->threads = calloc(opts->window, sizeof *setup->threads);
    if (!setup->connect || !setup->sink_endpoint || !setup->threads) {
        errno = ENOMEM;
        goto err;
    }
    setup->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                     .component = "worker",
                                                     .name = setup->name,
                                                     .stats_fn = zkit__worker_ops_stats,
                                                     .command_fn = zkit__worker_ops_command,
                                                     .arg = setup});
    if (!setup->ops)
        goto err;
    /* The handler links are inproc, between our own threads: plain.        */
    if (!setup->inline_handler && s_handler_sockets(setup))
        goto err;
    setup->vent = zkit__worker_vent_socket(setup);
    if (!setup->vent)
        goto err;
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    if (!setup->fast) /* RESULTs are resent until acked: no long flush */
        sopts.linger_ms = ZKIT__PIPELINE_LINGER_SHORT_MS;
    setup->sink = zkit__socket_new(setup->fast ? ZMQ_PUSH : ZMQ_DEALER, &sopts);
    if (!setup->sink || zkit__ops_attach(setup->ops, setup->sink, setup->sink_endpoint, false))
        goto err;
    uint32_t started = 0;
    for (; !setup->inline_handler && started < setup->window; started++) {
        zkit__worker_handler_t *h = &setup->threads[started];
        h->handler = opts->handler;
        h->handler_arg = opts->handler_arg;
        h->name = setup->name;
        int rc = pthread_create(&h->thread, NULL, zkit__worker_handler_run, h);
        if (rc) {
            errno = rc;
            zsys_error("ZKIT-PIPE-THREAD worker: cannot start handler thread: %s", strerror(rc));
            break;
        }
        h->started = true;
    }
    if (!setup->inline_handler && (s_collect_ready(setup, started) || started < setup->window)) {
        if (!errno)
            errno = EAGAIN;
        goto err;
    }
    self->actor = zactor_new(zkit__worker_actor, setup);
    if (!self->actor) {
        errno = ENOMEM;
        goto err;
    }
    return self;
err : {
    int err = errno;
    s_setup_free(setup);
    free(self);
    errno = err;
    return NULL;
}
}

void zkit_worker_destroy(zkit_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_worker_t *self = *self_p;
    /* The actor stops and joins the handlers and closes the sockets.       */
    zactor_destroy(&self->actor);
    s_setup_free(&self->setup);
    free(self);
    *self_p = NULL;
}

const char *zkit_worker_control(zkit_worker_t *self)
{
    return self ? zkit__ops_control_endpoint(self->setup.ops) : NULL;
}

int zkit_worker_stats(zkit_worker_t *self, zkit_worker_stats_t *stats)
{
    ssize_t size = zkit__pipeline_call(self->actor, "STATS", NULL, 0, stats, sizeof *stats);
    if (size != (ssize_t) sizeof *stats) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

int zkit__worker_stats(zkit_worker_t *self, zkit__worker_stats_t *stats)
{
    ssize_t size = zkit__pipeline_call(self->actor, "ISTATS", NULL, 0, stats, sizeof *stats);
    if (size != (ssize_t) sizeof *stats) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}
