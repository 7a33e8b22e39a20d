/*  worker_actor.c: the worker's socket thread.

    It owns the link to the ventilator, the link to the sink and the inproc
    ROUTER to the handler threads, so heartbeats go on while every handler
    is busy. Reliable mode: a task's RESULT is resent every heartbeat x
    liveness until the sink ACKs it, and only then is DONE sent (after 10
    unanswered sends it is given up with a FAIL); a silent
    ventilator is presumed dead after heartbeat x liveness, and the link is
    made again (a new DEALER, so a new routing id) after a backoff that
    doubles up to 32 x reconnect. Fast mode: tasks are read only while a
    handler is free, so PULL's own queue pushes back on the ventilator.

    Fast mode with a window of 1 runs the handler here, on this thread, as
    each task is read (s_inline): no job, no hop to a handler thread and
    back, the task decoded once into an envelope that is reused, the result
    built in another one and encoded straight into the frame that is sent.
    A result the sink cannot take yet is held, and no task is read until it
    is sent. Nothing here needs the thread while a handler runs: fast mode
    has no heartbeats and no resends.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/worker_actor.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_COMPONENT   "worker"
#define S_DRAIN       256                 /* messages taken from one socket per loop turn */
#define S_STREAMS_MAX 1024                /* fast mode: (src) streams tracked for gaps */
#define S_BACKOFF_MAX 5                   /* reconnect delay doubles up to 2^5 = 32 x */
#define S_RESULT_MAX  (16u * 1024 * 1024) /* the sink's frame limit */
/* A RESULT sent this many times (every heartbeat x liveness) without an ACK
   is given up, and the attempt reported failed. The sink is gone (it ended
   after its batch completed, and the ventilator has retired the task on its
   COMPLETE) or down far longer than a restart takes: either way holding the
   result for ever helps no one, and the ventilator, told FAIL, gives the
   task to another worker if it still wants it.                              */
#define S_RESULT_SENDS 10
/* Fast mode: jobs queued to one handler at once. A handler then finds its
   next task waiting instead of sleeping until the actor sends it, and the
   actor gets results in bursts: the two threads stop waking each other for
   every message. Reliable mode gives a handler one job at a time, since
   the ventilator's credit already bounds what a worker holds.              */
#define S_FAST_DEPTH 16

typedef zkit__worker_out_t s_out_t;
typedef zkit__worker_job_t s_job_t;
typedef zkit__worker_actor_t s_self_t;

/* ---- small FIFOs --------------------------------------------------------------- */

static void s_job_push(s_job_t **head, s_job_t **tail, s_job_t *job)
{
    job->next = NULL;
    if (*tail)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static s_job_t *s_job_pop(s_job_t **head, s_job_t **tail)
{
    s_job_t *job = *head;
    if (job) {
        *head = job->next;
        if (!*head)
            *tail = NULL;
        job->next = NULL;
    }
    return job;
}

/* ---- the ventilator link --------------------------------------------------------- */

static int s_vent_send(s_self_t *self, zkit__pipeline_msg_t *msg)
{
    if (!self->setup->vent)
        return -1;
    if (zkit__pipeline_send_msg(self->setup->vent, NULL, 0, msg, &self->traffic_vent))
        return -1;
    self->last_send = zclock_mono();
    return 0;
}

static void s_send_ready(s_self_t *self)
{
    zkit__pipeline_msg_t msg;
    msg.cmd = ZKIT__PIPELINE_READY;
    msg.window = self->setup->window;
    if (s_vent_send(self, &msg) == 0)
        self->istats.readies++;
}

static void s_flush_out(s_self_t *self)
{
    while (self->out_head && self->setup->vent) {
        s_out_t *out = self->out_head;
        zkit__pipeline_msg_t msg;
        msg.cmd = out->cmd;
        memcpy(msg.task_id, out->id, ZKIT_ID_SIZE);
        if (out->cmd == ZKIT__PIPELINE_FAIL)
            zkit__pipeline_copy_text(msg.reason, sizeof msg.reason, out->reason);
        if (s_vent_send(self, &msg) && errno == EAGAIN)
            return; /* kept for later; anything else would fail again */
        self->out_head = out->next;
        if (!self->out_head)
            self->out_tail = NULL;
        self->out_count--;
        free(out);
    }
}

/* Queues a DONE or FAIL for the ventilator and sends what it can. */
static void s_tell_vent(s_self_t *self, zkit__pipeline_cmd_t cmd, const uint8_t *id,
                        const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    s_out_t *out = malloc(sizeof *out + n + 1);
    if (!out)
        return; /* the ventilator's liveness or task timeout covers it */
    out->next = NULL;
    out->cmd = cmd;
    memcpy(out->id, id, ZKIT_ID_SIZE);
    memcpy(out->reason, reason ? reason : "", n + 1);
    if (self->out_tail)
        self->out_tail->next = out;
    else
        self->out_head = out;
    self->out_tail = out;
    self->out_count++;
    s_flush_out(self);
}

static void s_reconnect(s_self_t *self, int64_t now)
{
    zkit__worker_setup_t *setup = self->setup;
    if (setup->vent) {
        /* Presumed dead: a new socket is a new routing id, so a ventilator
           that only lost us sees a new worker and requeues the old one's.  */
        zkit__socket_close(&setup->vent, 0);
        self->stats.reconnects++;
        unsigned shift = self->backoff < S_BACKOFF_MAX ? self->backoff : S_BACKOFF_MAX;
        self->reconnect_at = now + (setup->reconnect_ms << shift);
        self->backoff++;
        return;
    }
    setup->vent = zkit__worker_vent_socket(setup);
    if (!setup->vent) {
        self->reconnect_at = now + setup->reconnect_ms;
        return;
    }
    self->last_recv = now;
    s_send_ready(self);
    s_flush_out(self);
}

/* PAUSE and RESUME (control endpoint), applied on the loop's turn after the
   callback flipped self->paused. Reliable mode closes the link to the
   ventilator: its next heartbeat to us fails, so it gives the tasks we
   had not started to other workers at once, instead of leaving them with
   a worker that will not run them. Tasks already running finish and their
   results go to the sink; their DONE waits for the link RESUME makes again
   (a DONE retires a task whoever sends it). Fast mode only stops reading
   the PULL socket (s_can_take).                                             */
static void s_apply_pause(s_self_t *self, int64_t now)
{
    zkit__worker_setup_t *setup = self->setup;
    if (self->paused && !self->link_paused) {
        self->link_paused = true;
        /* With its linger: DONE and FAIL queued on it still leave.         */
        zkit__socket_close(&setup->vent, ZKIT__LINGER_KEEP);
        while (self->queue_head) {
            zkit__worker_job_free(s_job_pop(&self->queue_head, &self->queue_tail));
            self->queued--;
        }
    }
    else if (!self->paused && self->link_paused) {
        self->link_paused = false;
        self->backoff = 0;
        s_reconnect(self, now); /* no socket: opens one and says READY */
    }
}

/* ---- jobs ------------------------------------------------------------------------- */

/* A handler finished a job: it may take one more. A FIFO, so work spreads
   over the handlers instead of piling onto the last one that finished.     */
static void s_slot_give(s_self_t *self, uint32_t index)
{
    if (self->slot_count < self->slot_capacity) {
        self->slots[(self->slot_head + self->slot_count) % self->slot_capacity] = index;
        self->slot_count++;
    }
}

static void s_assign(s_self_t *self)
{
    while (self->slot_count && self->queue_head) {
        s_job_t *job = s_job_pop(&self->queue_head, &self->queue_tail);
        self->queued--;
        uint32_t index = self->slots[self->slot_head];
        self->slot_head = (self->slot_head + 1) % self->slot_capacity;
        self->slot_count--;
        zkit__worker_handler_t *h = &self->setup->threads[index];
        void *router = zsock_resolve(self->setup->handlers);
        if (zmq_send(router, h->rid, sizeof h->rid, ZMQ_SNDMORE) == -1 ||
            zmq_send(router, &job, sizeof job, 0) == -1) {
            zsys_error("ZKIT-PIPE-HANDLER " S_COMPONENT ": cannot reach a handler thread");
            zkit__worker_job_free(job);
            s_slot_give(self, index);
        }
    }
}

/* Fast mode: (src, seq) gaps of tasks. Only meaningful when this worker is
   the only one pulling from its ventilator: PUSH deals the seqs out.       */
static void s_count_gap(s_self_t *self, const char *src, uint64_t seq)
{
    if (!src)
        return;
    uint64_t *last = zhashx_lookup(self->streams, src);
    if (!last) {
        if (zhashx_size(self->streams) >= S_STREAMS_MAX || !(last = malloc(sizeof *last)))
            return;
        *last = seq;
        if (zhashx_insert(self->streams, src, last))
            free(last);
        return;
    }
    if (seq > *last + 1)
        self->stats.gaps += seq - *last - 1;
    if (seq > *last)
        *last = seq;
}

/* Inline: sends the held result. False when the sink cannot take it yet. */
static bool s_send_held(s_self_t *self)
{
    if (!self->has_held)
        return true;
    if (zkit__pipeline_send_frame(self->setup->sink, &self->held, &self->traffic_sink) == -1)
        return false; /* still ours: sent when the socket can take it */
    self->has_held = false;
    return true;
}

/* Inline (fast mode, window 1): runs the task, decoded in env, on this
   thread and sends its result. Fast mode tells no one of a failure.       */
static void s_inline(s_self_t *self, const zkit_envelope_t *task)
{
    zkit__worker_setup_t *setup = self->setup;
    zkit_envelope_t *result = self->result;
    char reason[ZKIT__PIPELINE_REASON_MAX + 1];
    zkit_envelope_reset(result);
    int rc =
        zkit__worker_run(setup->handler, setup->handler_arg, setup->name, task, result, reason);
    if (rc == 0) {
        zkit_envelope_set_seq(result, self->seq + 1);
        if (zkit_envelope_encoded_size(result) > S_RESULT_MAX ||
            zkit_envelope_encode(result, &self->held))
            rc = -1;
    }
    if (rc) {
        self->stats.failed++;
        return;
    }
    self->seq++;
    self->stats.succeeded++;
    self->has_held = true;
    s_send_held(self);
}

static void s_task(s_self_t *self, zmq_msg_t *frame)
{
    zkit_envelope_t *env = self->env;
    if (zkit_envelope_decode_bytes(env, zmq_msg_data(frame), zmq_msg_size(frame))) {
        zkit__pipeline_bad(&self->istats.bad, ZKIT__PIPELINE_BAD_ENVELOPE, S_COMPONENT,
                           zkit_envelope_error_detail(env));
        return;
    }
    zkit_value_t batch;
    uint8_t id[ZKIT_ID_SIZE];
    memcpy(id, zkit_envelope_id(env), ZKIT_ID_SIZE);
    uint64_t seq = zkit_envelope_seq(env);
    bool ok = seq >= 1 && seq <= ZKIT_BATCH_TASKS_MAX && zkit_envelope_batch(env, &batch) == 0 &&
              zkit__pipeline_batch_valid(batch.data, batch.size);
    if (self->setup->fast && ok)
        s_count_gap(self, zkit_envelope_src(env), seq);
    if (ok && self->setup->inline_handler) {
        self->stats.tasks++;
        s_inline(self, env);
        zkit_envelope_reset(env);
        return;
    }
    zkit_envelope_reset(env);
    if (!ok) {
        zkit__pipeline_bad(&self->istats.bad, ZKIT__PIPELINE_BAD_META, S_COMPONENT,
                           "task without a valid batch or seq");
        if (!self->setup->fast)
            s_tell_vent(self, ZKIT__PIPELINE_FAIL, id, "task without a valid batch or seq");
        return;
    }
    self->stats.tasks++;
    /* After a DISCONNECT or a reconnect the ventilator may send a window
       more while old tasks still run; beyond that it is not following the
       protocol, and the task goes back at once.                            */
    if (self->queued >= 2 * (size_t) self->setup->window + 16) {
        self->istats.overloaded++;
        s_tell_vent(self, ZKIT__PIPELINE_FAIL, id, "worker overloaded");
        return;
    }
    s_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return;
    zmq_msg_init(&job->task);
    zmq_msg_move(&job->task, frame);
    memcpy(job->task_id, id, ZKIT_ID_SIZE);
    job->task_seq = seq;
    s_job_push(&self->queue_head, &self->queue_tail, job);
    self->queued++;
    s_assign(self);
}

static void s_send_result(s_self_t *self, s_job_t *job)
{
    zkit__pipeline_msg_t msg;
    msg.cmd = ZKIT__PIPELINE_RESULT;
    msg.envelope = &job->encoded;
    zkit__pipeline_send_msg(self->setup->sink, NULL, 0, &msg, &self->traffic_sink);
    self->istats.results_sent++;
    job->sends++;
}

static void s_free_pending(s_self_t *self, s_job_t *job, const char *key)
{
    zhashx_delete(self->pending, key);
    zkit__worker_job_free(job);
}

/* A handler finished a job. */
static void s_finished(s_self_t *self, s_job_t *job, int64_t now)
{
    if (job->rc == 0) {
        zkit_envelope_set_seq(job->result, self->seq + 1);
        if (zkit_envelope_encoded_size(job->result) > S_RESULT_MAX) {
            job->rc = -1;
            snprintf(job->reason, sizeof job->reason, "result larger than 16 MiB");
        }
        else if (zkit_envelope_encode(job->result, &job->encoded) == 0) {
            job->has_encoded = true;
            self->seq++;
        }
        else {
            job->rc = -1;
            snprintf(job->reason, sizeof job->reason, "cannot encode the result");
        }
        zkit_envelope_destroy(&job->result);
    }
    if (job->rc != 0) {
        self->stats.failed++;
        if (!self->setup->fast)
            s_tell_vent(self, ZKIT__PIPELINE_FAIL, job->task_id, job->reason);
        zkit__worker_job_free(job);
        return;
    }
    if (self->setup->fast) {
        self->stats.succeeded++;
        s_job_push(&self->fast_head, &self->fast_tail, job);
        self->fast_count++;
        return;
    }
    char key[33];
    zkit_id_to_hex(job->task_id, key);
    if (zhashx_lookup(self->pending, key)) {
        /* The same task ran twice here (given again after a DISCONNECT):
           the first result's ACK will retire it.                            */
        zkit__worker_job_free(job);
        return;
    }
    zhashx_insert(self->pending, key, job);
    s_send_result(self, job);
    job->resend_at = now + self->silence_ms;
    if (job->resend_at < self->next_resend)
        self->next_resend = job->resend_at;
}

static void s_resend(s_self_t *self, int64_t now)
{
    if (now < self->next_resend)
        return;
    self->next_resend = INT64_MAX;
    s_job_t *given_up = NULL; /* the table must not change during the walk */
    for (s_job_t *job = zhashx_first(self->pending); job; job = zhashx_next(self->pending)) {
        if (job->resend_at <= now) {
            if (job->sends >= S_RESULT_SENDS) {
                job->next = given_up;
                given_up = job;
                continue;
            }
            s_send_result(self, job);
            job->resend_at = now + self->silence_ms;
        }
        if (job->resend_at < self->next_resend)
            self->next_resend = job->resend_at;
    }
    while (given_up) {
        s_job_t *job = given_up;
        given_up = job->next;
        char key[33];
        zkit_id_to_hex(job->task_id, key);
        self->istats.abandoned++;
        s_tell_vent(self, ZKIT__PIPELINE_FAIL, job->task_id, "result not acknowledged by the sink");
        s_free_pending(self, job, key);
    }
}

static void s_ack(s_self_t *self, const uint8_t *id)
{
    char key[33];
    zkit_id_to_hex(id, key);
    s_job_t *job = zhashx_lookup(self->pending, key);
    if (!job) {
        self->istats.acks_unknown++;
        return;
    }
    self->istats.acks++;
    self->stats.succeeded++;
    s_tell_vent(self, ZKIT__PIPELINE_DONE, id, NULL);
    s_free_pending(self, job, key);
}

/* Fast mode: hands finished results to the PUSH socket until it would block. */
static void s_flush_results(s_self_t *self)
{
    while (self->fast_head) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &self->fast_head->encoded);
        if (zkit__pipeline_send_frame(self->setup->sink, &copy, &self->traffic_sink) == -1) {
            zmq_msg_close(&copy);
            return;
        }
        zkit__worker_job_free(s_job_pop(&self->fast_head, &self->fast_tail));
        self->fast_count--;
    }
}

/* ---- messages ---------------------------------------------------------------------- */

static void s_vent_message(s_self_t *self, zkit__pipeline_frames_t *frames, int64_t now)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_bad_reason_t why;
    if (zkit__pipeline_parse(frames, 0, &msg, &why)) {
        zkit__pipeline_bad(&self->istats.bad, why, S_COMPONENT, "from the ventilator");
        return;
    }
    if (self->setup->fast) {
        if (msg.cmd == ZKIT__PIPELINE_NONE)
            s_task(self, msg.envelope);
        else
            zkit__pipeline_bad(&self->istats.bad, ZKIT__PIPELINE_BAD_UNEXPECTED, S_COMPONENT,
                               zkit__pipeline_cmd_name(msg.cmd));
        return;
    }
    switch (msg.cmd) {
    case ZKIT__PIPELINE_TASK: s_task(self, msg.envelope); break;
    case ZKIT__PIPELINE_HEARTBEAT: self->istats.heartbeats_in++; break;
    case ZKIT__PIPELINE_DISCONNECT:
        /* The ventilator does not know us (it restarted, or presumed us dead):
           register again. Tasks still running here finish and their results
           still go to the sink; their DONE is then a harmless duplicate.    */
        self->istats.disconnects++;
        s_send_ready(self);
        break;
    default:
        zkit__pipeline_bad(&self->istats.bad, ZKIT__PIPELINE_BAD_UNEXPECTED, S_COMPONENT,
                           zkit__pipeline_cmd_name(msg.cmd));
        return;
    }
    self->last_recv = now;
    self->backoff = 0;
}

static void s_sink_message(s_self_t *self, zkit__pipeline_frames_t *frames)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_bad_reason_t why;
    if (zkit__pipeline_parse(frames, 0, &msg, &why)) {
        zkit__pipeline_bad(&self->istats.bad, why, S_COMPONENT, "from the sink");
        return;
    }
    if (msg.cmd == ZKIT__PIPELINE_ACK)
        s_ack(self, msg.task_id);
    else
        zkit__pipeline_bad(&self->istats.bad, ZKIT__PIPELINE_BAD_UNEXPECTED, S_COMPONENT,
                           zkit__pipeline_cmd_name(msg.cmd));
}

static void s_handler_message(s_self_t *self, zkit__pipeline_frames_t *frames, int64_t now)
{
    zkit__worker_setup_t *setup = self->setup;
    s_job_t *job = NULL;
    if (frames->count != 2 || zmq_msg_size(&frames->part[0]) != ZKIT__WORKER_HANDLER_RID ||
        zmq_msg_size(&frames->part[1]) != sizeof job)
        return; /* a READY: the constructor has seen it already */
    const uint8_t *rid = zmq_msg_data(&frames->part[0]);
    uint32_t index =
        (uint32_t) rid[1] << 24 | (uint32_t) rid[2] << 16 | (uint32_t) rid[3] << 8 | rid[4];
    memcpy(&job, zmq_msg_data(&frames->part[1]), sizeof job);
    if (index < setup->window)
        s_slot_give(self, index);
    s_finished(self, job, now);
}

static void s_pipe_message(s_self_t *self, zkit__pipeline_frames_t *frames)
{
    zmq_msg_t *cmd = &frames->part[0];
    size_t size = zmq_msg_size(cmd);
    const char *p = zmq_msg_data(cmd);
    if (size == 5 && memcmp(p, "STATS", 5) == 0)
        zkit__pipeline_reply(self->pipe, &self->stats, sizeof self->stats);
    else if (size == 6 && memcmp(p, "ISTATS", 6) == 0)
        zkit__pipeline_reply(self->pipe, &self->istats, sizeof self->istats);
    else if (size == 5 && memcmp(p, "$TERM", 5) == 0)
        self->terminated = true;
}

/* ---- the loop ---------------------------------------------------------------------- */

static void s_work(s_self_t *self, int64_t now)
{
    zkit__worker_setup_t *setup = self->setup;
    if (setup->fast) {
        s_flush_results(self);
        s_send_held(self);
        return;
    }
    s_apply_pause(self, now);
    if (setup->vent && now - self->last_recv > self->silence_ms)
        s_reconnect(self, now);
    else if (!setup->vent && !self->link_paused && now >= self->reconnect_at)
        s_reconnect(self, now);
    if (setup->vent && now - self->last_send >= setup->heartbeat_ms) {
        zkit__pipeline_msg_t msg;
        msg.cmd = ZKIT__PIPELINE_HEARTBEAT;
        s_vent_send(self, &msg);
        self->last_send = now; /* also when it failed: try again next beat */
    }
    s_flush_out(self);
    s_resend(self, now);
}

static long s_timeout(s_self_t *self, int64_t now)
{
    zkit__worker_setup_t *setup = self->setup;
    if (setup->fast)
        return -1;
    int64_t due = self->next_resend;
    if (setup->vent) {
        int64_t beat = self->last_send + setup->heartbeat_ms;
        int64_t dead = self->last_recv + self->silence_ms + 1;
        due = beat < due ? beat : due;
        due = dead < due ? dead : due;
    }
    else if (!self->link_paused && self->reconnect_at < due)
        due = self->reconnect_at;
    if (due <= now)
        return 0;
    return due - now > INT_MAX ? INT_MAX : (long) (due - now);
}

/* Fast mode: a task is taken only when a handler can be given it at once
   and results are not piling up for a sink that does not read.            */
static bool s_can_take(const s_self_t *self)
{
    if (self->paused)
        return false;
    if (self->setup->inline_handler)
        return !self->has_held;
    return self->slot_count && self->fast_count < self->slot_capacity;
}

static void s_drain(s_self_t *self, zsock_t *sock, int which)
{
    for (int i = 0; i < S_DRAIN && !self->terminated; i++) {
        /* A fast worker takes a task only when a handler can run it.       */
        if (which == 2 && self->setup->fast && !s_can_take(self))
            return;
        zkit__pipeline_frames_t frames;
        if (zkit__pipeline_recv(sock, &frames, ZMQ_DONTWAIT))
            return;
        int64_t now = zclock_mono();
        if (which >= 2)
            zkit__traffic_in(which == 2 ? &self->traffic_vent : &self->traffic_sink, frames.bytes);
        if (which == 0)
            s_pipe_message(self, &frames);
        else if (which == 1)
            s_handler_message(self, &frames, now);
        else if (which == 2)
            s_vent_message(self, &frames, now);
        else
            s_sink_message(self, &frames);
        zkit__pipeline_frames_close(&frames);
        if (which == 2 && !self->setup->vent)
            return; /* the socket may be gone */
    }
}

static void s_loop(s_self_t *self)
{
    zkit__worker_setup_t *setup = self->setup;
    while (!self->terminated) {
        int64_t now = zclock_mono();
        bool fast = setup->fast;
        bool take = !fast || s_can_take(self);
        bool out = self->fast_head || self->has_held;
        /* pipe, sink, then the ventilator link (absent while reconnecting)
           and the handler link (absent inline), at the indices that follow. */
        zmq_pollitem_t items[5] = {
            {zsock_resolve(self->pipe), 0, ZMQ_POLLIN, 0},
            {zsock_resolve(setup->sink), 0, (short) (fast ? (out ? ZMQ_POLLOUT : 0) : ZMQ_POLLIN),
             0},
        };
        int n = 2, vent = -1, handlers = -1;
        if (setup->vent) {
            vent = n++;
            items[vent] =
                (zmq_pollitem_t){zsock_resolve(setup->vent), 0, (short) (take ? ZMQ_POLLIN : 0), 0};
        }
        if (setup->handlers) {
            handlers = n++;
            items[handlers] = (zmq_pollitem_t){zsock_resolve(setup->handlers), 0, ZMQ_POLLIN, 0};
        }
        int control = zkit__ops_pollitem(setup->ops, &items[n]) ? n++ : -1;
        if (zmq_poll(items, n, s_timeout(self, now)) == -1 && errno != EINTR)
            break;
        if (control >= 0 && (items[control].revents & ZMQ_POLLIN) &&
            zkit__ops_serve(setup->ops) == -1)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_drain(self, self->pipe, 0);
        if (!self->terminated && handlers >= 0 && (items[handlers].revents & ZMQ_POLLIN))
            s_drain(self, setup->handlers, 1);
        if (!self->terminated && !fast && (items[1].revents & ZMQ_POLLIN))
            s_drain(self, setup->sink, 3);
        if (!self->terminated && vent >= 0 && setup->vent && (items[vent].revents & ZMQ_POLLIN))
            s_drain(self, setup->vent, 2);
        if (!self->terminated)
            s_work(self, zclock_mono());
    }
}

/* Stops the handlers (waiting for running ones), then disposes of what is
   left. Results finished meanwhile are sent once: the ventilator will give
   their tasks to another worker, and the sink drops the duplicate.         */
static void s_shutdown(s_self_t *self)
{
    zkit__worker_setup_t *setup = self->setup;
    zkit__worker_stop_handlers(setup);
    zkit__pipeline_frames_t frames;
    while (setup->handlers && zkit__pipeline_recv(setup->handlers, &frames, ZMQ_DONTWAIT) == 0) {
        s_job_t *job = NULL;
        if (frames.count == 2 && zmq_msg_size(&frames.part[1]) == sizeof job) {
            memcpy(&job, zmq_msg_data(&frames.part[1]), sizeof job);
            s_finished(self, job, zclock_mono());
        }
        zkit__pipeline_frames_close(&frames);
    }
    if (setup->fast) {
        s_flush_results(self);
        s_send_held(self);
    }
    if (self->has_held)
        zmq_msg_close(&self->held);
    self->has_held = false;
    while (self->queue_head)
        zkit__worker_job_free(s_job_pop(&self->queue_head, &self->queue_tail));
    while (self->fast_head)
        zkit__worker_job_free(s_job_pop(&self->fast_head, &self->fast_tail));
    for (s_job_t *job = zhashx_first(self->pending); job; job = zhashx_next(self->pending))
        zkit__worker_job_free(job);
    while (self->out_head) {
        s_out_t *out = self->out_head;
        self->out_head = out->next;
        free(out);
    }
    /* Closed here, on the thread that used them, with their linger.        */
    zkit__socket_close(&setup->vent, ZKIT__LINGER_KEEP);
    zkit__socket_close(&setup->sink, ZKIT__LINGER_KEEP);
    zkit__socket_close(&setup->handlers, 0);
}

static void s_free_item(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

void zkit__worker_actor(zsock_t *pipe, void *args)
{
    s_self_t self = {.setup = args, .pipe = pipe};
    zkit__worker_setup_t *setup = self.setup;
    self.env = zkit_envelope_new();
    self.result = zkit_envelope_new();
    uint32_t depth = setup->fast ? S_FAST_DEPTH : 1;
    self.slot_capacity = (size_t) setup->window * depth;
    self.slots = calloc(self.slot_capacity, sizeof *self.slots);
    self.pending = zhashx_new();
    self.streams = zhashx_new();
    zsock_signal(pipe, 0);
    if (self.env && self.result && self.slots && self.pending && self.streams) {
        zhashx_set_destructor(self.streams, s_free_item);
        for (uint32_t round = 0; round < depth; round++)
            for (uint32_t i = 0; i < setup->window; i++)
                s_slot_give(&self, i);
        self.silence_ms = setup->heartbeat_ms * setup->liveness;
        self.next_resend = INT64_MAX;
        self.last_recv = self.last_send = zclock_mono();
        if (!setup->fast)
            s_send_ready(&self);
        setup->actor = &self; /* for the control callbacks, on this thread */
        s_loop(&self);
        setup->actor = NULL;
    }
    else {
        zsys_error("ZKIT-PIPE-NOMEM " S_COMPONENT ": cannot start");
        /* Still answer the pipe until told to stop.                         */
        while (!self.terminated) {
            zkit__pipeline_frames_t frames;
            if (zkit__pipeline_recv(pipe, &frames, 0))
                break;
            s_pipe_message(&self, &frames);
            zkit__pipeline_frames_close(&frames);
        }
    }
    if (self.pending)
        s_shutdown(&self);
    zhashx_destroy(&self.pending);
    zhashx_destroy(&self.streams);
    zkit_envelope_destroy(&self.env);
    zkit_envelope_destroy(&self.result);
    free(self.slots);
}
