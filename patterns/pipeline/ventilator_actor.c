/*  ventilator_actor.c: the ventilator's actor thread.

    Reliable mode: a ROUTER to the workers and a DEALER to the sink. Every
    task lives in the dispatcher core until a DONE retires it or it is dead-
    lettered; the dispatcher decides who gets what and when an attempt has
    failed, this file translates frames into its calls and back. Batch
    announcements (BATCH) and dead letters (DEAD) go to the sink and are sent
    again every heartbeat until the sink answers OK, so a batch ends at the
    sink even when the sink was down for a while (ventilator_batch.c keeps
    the batches and their announcements). The sink's COMPLETE, in
    turn, retires every task of the batch still held (each task is in its
    batch's list of live tasks for this), so the batch ends here even when a
    worker died between the sink's ACK and its DONE.

    Fast mode: a PUSH to the workers; tasks wait in a FIFO until the socket
    takes them (never blocking the thread) and are gone once sent.

    Tasks, and the OPEN and CLOSE of batches, arrive through the submit queue
    (ventilator_queue.h), read in order and in bursts: each loop turn takes
    everything submitted so far. The tasks stay in the queue's slabs, where
    the caller copied them, until the actor releases them; credits for
    max_pending go back once per loop turn, not once per task.

    With a spool (reliable mode), the caller appended every record before
    it reached this thread; here a task's record is acknowledged when the
    task is retired, or once the sink confirmed its dead letter (a task that
    ended otherwise, abandoned at destroy, stays in the spool: resumed).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/ventilator_actor.h"
#include "pipeline/ventilator_spool.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_COMPONENT ZKIT__VENTILATOR_COMPONENT
#define S_DRAIN     256 /* messages taken from one socket per loop turn */

typedef zkit__vrid_t s_rid_t;

typedef zkit__ventilator_task_t s_task_t;
typedef zkit__ventilator_batch_t s_batch_t;
typedef zkit__vannounce_t s_announce_t;
typedef zkit__ventilator_actor_t s_self_t;

/* ---- tasks ------------------------------------------------------------------------ */

/* arg is the actor's state (the dispatcher's payload_free_arg).           */
static void s_task_free(void *payload, void *arg)
{
    s_self_t *self = arg;
    s_task_t *task = payload;
    if (task) {
        free(task->reason);
        task->reason = NULL;
        zkit__vqueue_release(self->queue, task);
    }
}

/* Reliable mode: every task the dispatcher holds is in its batch's list. */
static void s_live_link(s_task_t *task)
{
    s_batch_t *batch = task->batch;
    task->live_prev = NULL;
    task->live_next = batch->live;
    if (batch->live)
        batch->live->live_prev = task;
    batch->live = task;
}

static void s_live_unlink(s_task_t *task)
{
    s_batch_t *batch = task->batch;
    if (task->live_prev)
        task->live_prev->live_next = task->live_next;
    else if (batch->live == task)
        batch->live = task->live_next;
    if (task->live_next)
        task->live_next->live_prev = task->live_prev;
    task->live_prev = task->live_next = NULL;
}

/* The task is gone from the actor (retired, dead or sent): its batch and the
   submitter learn of it. A retired task is final in the spool too; a dead
   one is once the sink confirms its dead letter (zkit__vbatch_confirmed). */
static void s_task_end(s_self_t *self, s_task_t *task, uint32_t attempts, bool retired)
{
    s_batch_t *batch = task->batch;
    if (!self->fast)
        s_live_unlink(task);
    if (attempts > 1)
        batch->retried += attempts - 1;
    if (retired)
        zkit__vspool_ack(self->spool, task->spool_seq);
    s_task_free(task, self);
    self->credit_back++;
    zkit__vbatch_unref(self, batch);
}

static void s_dead(s_self_t *self, s_task_t *task, const uint8_t id[ZKIT_ID_SIZE],
                   uint32_t attempts, const char *why)
{
    s_batch_t *batch = task->batch;
    batch->dead++;
    s_announce_t *a = calloc(1, sizeof *a);
    if (a) {
        a->cmd = ZKIT__PIPELINE_DEAD;
        a->batch = batch;
        memcpy(a->task_id, id, ZKIT_ID_SIZE);
        a->task_seq = task->seq;
        a->attempts = attempts;
        a->spool_seq = task->spool_seq;
        char text[ZKIT__PIPELINE_REASON_MAX + 64];
        snprintf(text, sizeof text, "%s%s%s", why, task->reason ? ": " : "",
                 task->reason ? task->reason : "");
        zkit__pipeline_copy_text(a->reason, sizeof a->reason, text);
        zkit__vbatch_announce(self, a);
    }
    else
        zsys_error("ZKIT-PIPE-NOMEM " S_COMPONENT ": dead letter of task %" PRIu64
                   " of batch %s not announced",
                   task->seq, batch->name);
    s_task_end(self, task, attempts, false);
}

static void s_drain_dead(s_self_t *self)
{
    zkit__dispatcher_dead_t dead;
    while (zkit__dispatcher_next_dead(self->dispatcher, &dead))
        s_dead(self, dead.payload, dead.id, dead.attempts,
               zkit__dispatcher_reason_name(dead.reason));
}

static void s_submit(s_self_t *self, s_task_t *task, int64_t now)
{
    s_batch_t *batch = self->current;
    if (!batch || batch->closed) {
        /* The caller checks this; a task without a batch cannot happen.    */
        s_task_free(task, self);
        self->credit_back++;
        return;
    }
    task->batch = batch;
    batch->received++;
    if (task->seq) {
        /* Fixed by the caller (spool): resumed tasks may skip seqs.        */
        if (task->seq > batch->submitted)
            batch->submitted = task->seq;
    }
    else
        task->seq = ++batch->submitted;
    batch->refs++;
    if (self->fast) {
        if (self->queue_tail)
            self->queue_tail->next = task;
        else
            self->queue_head = task;
        self->queue_tail = task;
        return;
    }
    if (!task->spool_seq)
        zkit_id_generate(task->id); /* with a spool, the caller made it */
    s_live_link(task);
    if (zkit__dispatcher_submit(self->dispatcher, task->id, task, ZKIT__DISPATCHER_NEVER, now)) {
        /* Out of memory: end the task as dead so the batch still ends.     */
        task->reason = strdup("ventilator out of memory");
        s_dead(self, task, task->id, 0, "NACKED");
    }
}

/* Encodes the task's envelope for attempt att into part (uninitialised).
   src and batch stay in the envelope from one task to the next of the same
   batch; every other field is set for each task.                          */
static int s_encode(s_self_t *self, const s_task_t *task, const uint8_t *id, uint32_t att,
                    zmq_msg_t *part)
{
    zkit_envelope_t *env = self->env;
    if (self->env_batch != task->batch) {
        zkit_envelope_reset(env);
        self->env_batch = NULL;
        if (zkit_envelope_set_src(env, self->name) ||
            zkit_envelope_set_batch_str(env, task->batch->name))
            return -1;
        self->env_batch = task->batch;
    }
    uint8_t fresh[ZKIT_ID_SIZE];
    if (!id) {
        zkit_id_generate(fresh); /* fast mode: a new id per message */
        id = fresh;
    }
    zkit_envelope_set_id(env, id);
    zkit_envelope_set_seq(env, task->seq);
    zkit_envelope_set_ts(env, task->ts);
    zkit_envelope_set_body_ref(env, task->body, task->size);
    zkit_envelope_set_att(env, att);
    int rc = zkit_envelope_encode(env, part);
    /* Let go of the body: the task may be released before the next encode. */
    zkit_envelope_set_body_ref(env, NULL, 0);
    return rc;
}

static int s_send_task(s_self_t *self, const s_rid_t *rid, const zkit__dispatcher_job_t *job)
{
    zkit__pipeline_frames_t frames = {.count = 0};
    if (zkit__pipeline_frames_add(&frames, rid->data, rid->size) ||
        zkit__pipeline_frames_add(&frames, "TASK", 4) ||
        s_encode(self, job->payload, job->id, job->attempts, &frames.part[2])) {
        zkit__pipeline_frames_close(&frames);
        return -1;
    }
    frames.count = 3;
    return zkit__pipeline_send(self->workers, &frames, &self->traffic_workers);
}

/* Routing ids are keys of the peers table in hex. */
static char *s_rid_hex(const void *rid, size_t size, char hex[2 * ZKIT__DISPATCHER_PEER_MAX + 1])
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = rid;
    for (size_t i = 0; i < size; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 15];
    }
    hex[2 * size] = '\0';
    return hex;
}

static void s_peer_forget(s_self_t *self, const void *rid, size_t size)
{
    char hex[2 * ZKIT__DISPATCHER_PEER_MAX + 1];
    zhashx_delete(self->peers, s_rid_hex(rid, size, hex));
}

/* Forgets the workers the dispatcher presumed dead since the last drain:
   called right after every next() and tick(), so the peers table never
   lists a worker the dispatcher no longer knows (none can have said READY
   again in between; one that had would stay).                             */
static void s_drain_expired(s_self_t *self)
{
    zkit__dispatcher_expired_t gone;
    while (zkit__dispatcher_next_expired(self->dispatcher, &gone))
        if (!gone.registered)
            s_peer_forget(self, gone.peer, gone.peer_size);
}

static void s_dispatch(s_self_t *self, int64_t now)
{
    zkit__dispatcher_job_t job;
    if (self->paused) {
        /* Nothing is handed out, but liveness and timeouts still apply (and
           the poll timeout, from next_due, must move on).                   */
        zkit__dispatcher_tick(self->dispatcher, now);
        s_drain_expired(self);
        s_drain_dead(self);
        return;
    }
    while (zkit__dispatcher_next(self->dispatcher, now, &job)) {
        s_task_t *task = job.payload;
        if (task->retired) {
            /* Counted when the COMPLETE came; the dispatcher lets go of a
               task only once it was handed out, so here it does, unsent.   */
            void *payload = NULL;
            if (zkit__dispatcher_ack(self->dispatcher, job.peer, job.peer_size, job.id, now,
                                     &payload) == 0)
                s_task_end(self, payload, 0, true);
            continue;
        }
        s_rid_t rid;
        rid.size = job.peer_size;
        memcpy(rid.data, job.peer, rid.size);
        if (s_send_task(self, &rid, &job)) {
            /* Gone (EHOSTUNREACH) or not reading (EAGAIN at a high water mark
               far above its window): either way it cannot take work now.   */
            self->stats.send_failed++;
            zkit__dispatcher_peer_gone(self->dispatcher, rid.data, rid.size, now);
            s_peer_forget(self, rid.data, rid.size);
        }
    }
    s_drain_expired(self);
    s_drain_dead(self);
}

/* ---- messages from workers -------------------------------------------------------- */

static void s_send_bare(s_self_t *self, const void *rid, size_t rid_size, zkit__pipeline_cmd_t cmd)
{
    zkit__pipeline_msg_t msg;
    msg.cmd = cmd;
    zkit__pipeline_send_msg(self->workers, rid, rid_size, &msg, &self->traffic_workers);
}

static void s_disconnect(s_self_t *self, const void *rid, size_t rid_size)
{
    self->stats.disconnects++;
    s_send_bare(self, rid, rid_size, ZKIT__PIPELINE_DISCONNECT);
}

static bool s_peer_known(s_self_t *self, const void *rid, size_t rid_size)
{
    zkit__dispatcher_peer_info_t info;
    return zkit__dispatcher_peer_info(self->dispatcher, rid, rid_size, &info) == 0;
}

static void s_ready(s_self_t *self, const void *rid, size_t rid_size, uint32_t window, int64_t now)
{
    self->stats.readies++;
    if (zkit__dispatcher_peer_ready(self->dispatcher, rid, rid_size, window, now))
        return;
    char hex[2 * ZKIT__DISPATCHER_PEER_MAX + 1];
    s_rid_hex(rid, rid_size, hex);
    if (zhashx_lookup(self->peers, hex))
        return;
    s_rid_t *entry = malloc(sizeof *entry);
    if (!entry)
        return;
    entry->size = rid_size;
    memcpy(entry->data, rid, rid_size);
    if (zhashx_insert(self->peers, hex, entry))
        free(entry);
}

static void s_done(s_self_t *self, const void *rid, size_t rid_size, const uint8_t *id, int64_t now)
{
    zkit__dispatcher_item_info_t info;
    uint32_t attempts = zkit__dispatcher_find(self->dispatcher, id, &info) == 0 ? info.attempts : 0;
    void *payload = NULL;
    /* An ack from any peer retires the task: the sink has its result.      */
    if (zkit__dispatcher_ack(self->dispatcher, rid, rid_size, id, now, &payload) == 0) {
        s_task_t *task = payload;
        task->batch->done++;
        s_task_end(self, task, attempts, true);
    }
    else
        self->stats.duplicate_done++;
}

static void s_fail(s_self_t *self, const void *rid, size_t rid_size, const uint8_t *id,
                   const char *reason, int64_t now)
{
    zkit__dispatcher_item_info_t info;
    if (zkit__dispatcher_find(self->dispatcher, id, &info) == 0 &&
        info.state == ZKIT__DISPATCHER_IN_FLIGHT && info.peer_size == rid_size &&
        memcmp(info.peer, rid, rid_size) == 0) {
        /* Keep the text: it goes into the DEAD reason if this was the last. */
        s_task_t *task = info.payload;
        char *copy = strdup(reason);
        if (copy) {
            free(task->reason);
            task->reason = copy;
        }
    }
    if (zkit__dispatcher_nack(self->dispatcher, rid, rid_size, id, now))
        self->stats.stale_fail++;
}

static void s_worker_message(s_self_t *self, zkit__pipeline_frames_t *frames, int64_t now)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_bad_reason_t why;
    size_t rid_size = frames->count ? zmq_msg_size(&frames->part[0]) : 0;
    if (rid_size == 0 || rid_size > ZKIT__DISPATCHER_PEER_MAX) {
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_FRAMES, S_COMPONENT, "routing id");
        return;
    }
    const void *rid = zmq_msg_data(&frames->part[0]);
    if (zkit__pipeline_parse(frames, 1, &msg, &why)) {
        zkit__pipeline_bad(&self->stats.bad, why, S_COMPONENT, "from a worker");
        return;
    }
    bool known = msg.cmd == ZKIT__PIPELINE_READY || s_peer_known(self, rid, rid_size);
    switch (msg.cmd) {
    case ZKIT__PIPELINE_READY: s_ready(self, rid, rid_size, msg.window, now); break;
    case ZKIT__PIPELINE_HEARTBEAT:
        if (known)
            zkit__dispatcher_peer_seen(self->dispatcher, rid, rid_size, now);
        break;
    case ZKIT__PIPELINE_DONE: s_done(self, rid, rid_size, msg.task_id, now); break;
    case ZKIT__PIPELINE_FAIL:
        if (known)
            s_fail(self, rid, rid_size, msg.task_id, msg.reason, now);
        else
            self->stats.stale_fail++;
        break;
    default:
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_UNEXPECTED, S_COMPONENT,
                           zkit__pipeline_cmd_name(msg.cmd));
        return;
    }
    if (!known)
        s_disconnect(self, rid, rid_size);
}

/* The sink has every task of the batch stored or dead-lettered. A task
   still held here had its result stored and its DONE lost (its worker died
   or stalled between the sink's ACK and the DONE), so no one would ever
   retire it: retire it now. Answered with OK whatever happens, so the sink
   stops asking; a COMPLETE for a batch not closed here, or with another
   total (a name reused), changes nothing: the sink says COMPLETE again
   when this batch's BATCH with its total reaches it.                       */
static void s_complete(s_self_t *self, const char *name, uint64_t total, int64_t now)
{
    zkit__pipeline_msg_t ok;
    ok.cmd = ZKIT__PIPELINE_OK;
    zkit__pipeline_batch_token(name, total, ok.token);
    zkit__pipeline_send_msg(self->sink, NULL, 0, &ok, &self->traffic_sink);
    self->stats.completes++;
    s_batch_t *batch = NULL; /* the newest of the name: names may repeat */
    for (s_batch_t *b = zlistx_last(self->batches); b && !batch; b = zlistx_prev(self->batches))
        if (strcmp(b->name, name) == 0)
            batch = b;
    if (!batch || !batch->closed || batch->total != total)
        return;
    /* The last task's end must not free the batch under us.                */
    batch->refs++;
    /* Dead letters not drained yet are still in the list: drain them first,
       so each task below is queued or in flight, and counted once.         */
    s_drain_dead(self);
    s_task_t *next = NULL;
    for (s_task_t *task = batch->live; task; task = next) {
        next = task->live_next;
        if (task->retired)
            continue;
        zkit__dispatcher_item_info_t info;
        uint32_t attempts =
            zkit__dispatcher_find(self->dispatcher, task->id, &info) == 0 ? info.attempts : 0;
        void *payload = NULL;
        if (zkit__dispatcher_ack(self->dispatcher, NULL, 0, task->id, now, &payload) == 0) {
            batch->done++;
            self->stats.sink_retired++;
            s_task_end(self, payload, attempts, true);
        }
        else if (errno == EPROTO) {
            /* Never sent: only a reused batch name gets here. The dispatcher
               keeps it until s_dispatch hands it out; it counts as done now. */
            batch->done++;
            self->stats.sink_retired++;
            task->retired = true;
        }
    }
    zkit__vbatch_unref(self, batch);
}

static void s_sink_message(s_self_t *self, zkit__pipeline_frames_t *frames, int64_t now)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_bad_reason_t why;
    if (zkit__pipeline_parse(frames, 0, &msg, &why)) {
        zkit__pipeline_bad(&self->stats.bad, why, S_COMPONENT, "from the sink");
        return;
    }
    if (msg.cmd == ZKIT__PIPELINE_OK)
        zkit__vbatch_confirmed(self, msg.token);
    else if (msg.cmd == ZKIT__PIPELINE_COMPLETE)
        s_complete(self, msg.batch, msg.total, now);
    else
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_UNEXPECTED, S_COMPONENT,
                           zkit__pipeline_cmd_name(msg.cmd));
}

/* ---- timers ------------------------------------------------------------------------ */

/* Heartbeats every known worker (the table holds only workers the
   dispatcher knows: s_drain_expired forgets the dead ones), and hands back
   at once the tasks of one that is gone.                                   */
static void s_heartbeat(s_self_t *self, int64_t now)
{
    zlistx_t *gone = zlistx_new();
    if (!gone)
        return;
    zlistx_set_destructor(gone, zkit__vbatch_free_item);
    for (s_rid_t *rid = zhashx_first(self->peers); rid; rid = zhashx_next(self->peers)) {
        zkit__pipeline_msg_t msg;
        msg.cmd = ZKIT__PIPELINE_HEARTBEAT;
        if (zkit__pipeline_send_msg(self->workers, rid->data, rid->size, &msg,
                                    &self->traffic_workers) == -1 &&
            errno == EHOSTUNREACH) {
            /* Disconnected: its tasks need not wait for liveness.           */
            zkit__dispatcher_peer_gone(self->dispatcher, rid->data, rid->size, now);
            char *key = strdup(zhashx_cursor(self->peers));
            if (key)
                zlistx_add_end(gone, key);
        }
    }
    /* The table must not change during the walk: forget them afterwards.   */
    for (const char *key = zlistx_first(gone); key; key = zlistx_next(gone))
        zhashx_delete(self->peers, key);
    zlistx_destroy(&gone);
    zkit__vbatch_resend(self);
}

/* Fast mode: hands queued tasks to the PUSH socket until it would block. */
static void s_flush(s_self_t *self)
{
    while (self->queue_head) {
        s_task_t *task = self->queue_head;
        zmq_msg_t part;
        if (s_encode(self, task, NULL, 1, &part))
            return;
        if (zkit__pipeline_send_frame(self->workers, &part, &self->traffic_workers) == -1) {
            zmq_msg_close(&part);
            return;
        }
        self->queue_head = task->next;
        if (!self->queue_head)
            self->queue_tail = NULL;
        task->batch->done++;
        s_task_end(self, task, 1, true);
    }
}

/* Gives back the credits of the tasks that ended this loop turn: one lock
   and one wakeup of a blocked submit for all of them.                     */
static void s_give_credit(s_self_t *self)
{
    zkit__vqueue_give(self->queue, self->credit_back);
    self->credit_back = 0;
}

static void s_work(s_self_t *self, int64_t now)
{
    if (self->fast) {
        if (!self->paused)
            s_flush(self);
    }
    else {
        if (now >= self->next_heartbeat) {
            s_heartbeat(self, now);
            self->next_heartbeat = now + self->heartbeat_ms;
        }
        s_dispatch(self, now);
    }
    s_give_credit(self);
    zkit__vbatch_check_complete(self);
    if (self->waiter.active) {
        zkit_batch_report_t report;
        zkit__vbatch_report(self, &report);
        if (report.complete)
            zkit__pipeline_waiter_reply(&self->waiter, self->pipe, 0, 0, &report);
        else if (now >= self->waiter.deadline_ms)
            zkit__pipeline_waiter_reply(&self->waiter, self->pipe, -1, ETIMEDOUT, &report);
    }
}

static long s_timeout(s_self_t *self, int64_t now)
{
    int64_t due = self->waiter.active ? self->waiter.deadline_ms : INT64_MAX;
    if (!self->fast) {
        if (self->next_heartbeat < due)
            due = self->next_heartbeat;
        int64_t next = zkit__dispatcher_next_due(self->dispatcher);
        if (next < due)
            due = next;
    }
    if (due == INT64_MAX)
        return -1;
    if (due <= now)
        return 0;
    return due - now > INT_MAX ? INT_MAX : (long) (due - now);
}

/* ---- the pipe ----------------------------------------------------------------------- */

static bool s_is(zmq_msg_t *frame, const char *cmd)
{
    size_t n = strlen(cmd);
    return zmq_msg_size(frame) == n && memcmp(zmq_msg_data(frame), cmd, n) == 0;
}

/* Takes everything submitted so far, in order. Returns how many records. */
static size_t s_take(s_self_t *self, int64_t now)
{
    size_t count = 0;
    s_task_t *rec;
    while ((rec = zkit__vqueue_next(self->queue)) != NULL) {
        count++;
        if (rec->kind == ZKIT__VQUEUE_TASK) {
            s_submit(self, rec, now);
            continue;
        }
        if (rec->kind == ZKIT__VQUEUE_OPEN)
            zkit__vbatch_open(self, rec);
        else
            zkit__vbatch_close(self, rec);
        zkit__vqueue_release(self->queue, rec);
    }
    return count;
}

static void s_pipe_message(s_self_t *self, zkit__pipeline_frames_t *frames, int64_t now)
{
    zmq_msg_t *cmd = &frames->part[0];
    zmq_msg_t *arg = frames->count > 1 ? &frames->part[1] : NULL;
    /* Every call the caller made before this command is in the queue.      */
    s_take(self, now);
    if (s_is(cmd, "WAIT")) {
        zkit_batch_report_t report;
        zkit__vbatch_report(self, &report);
        if (!zkit__pipeline_waiter_start(&self->waiter, arg, now))
            zkit__pipeline_reply(self->pipe, "", 0);
        else if (!self->current)
            zkit__pipeline_waiter_reply(&self->waiter, self->pipe, -1, EINVAL, &report);
    }
    else if (s_is(cmd, "UNWAIT")) {
        zkit_batch_report_t report;
        zkit__vbatch_report(self, &report);
        zkit__pipeline_waiter_reply(&self->waiter, self->pipe, -1, EINTR, &report);
    }
    else if (s_is(cmd, "REPORT")) {
        zkit__pipeline_status_t status = {.rc = 0};
        zkit__vbatch_report(self, &status.report);
        zkit__pipeline_reply(self->pipe, &status, sizeof status);
    }
    else if (s_is(cmd, "STATS")) {
        self->stats.peers = zhashx_size(self->peers);
        if (self->dispatcher)
            self->stats.dispatcher = *zkit__dispatcher_counters(self->dispatcher);
        zkit__pipeline_reply(self->pipe, &self->stats, sizeof self->stats);
    }
    else if (s_is(cmd, "$TERM"))
        self->terminated = true;
}

/* ---- the actor ---------------------------------------------------------------------- */

static void s_drain(s_self_t *self, zsock_t *sock, int which)
{
    for (int i = 0; i < S_DRAIN && !self->terminated; i++) {
        zkit__pipeline_frames_t frames;
        if (zkit__pipeline_recv(sock, &frames, ZMQ_DONTWAIT))
            return;
        int64_t now = zclock_mono();
        if (which)
            zkit__traffic_in(which == 1 ? &self->traffic_workers : &self->traffic_sink,
                             frames.bytes);
        if (which == 0)
            s_pipe_message(self, &frames, now);
        else if (which == 1)
            s_worker_message(self, &frames, now);
        else
            s_sink_message(self, &frames, now);
        zkit__pipeline_frames_close(&frames);
    }
}

void zkit__ventilator_actor(zsock_t *pipe, void *args)
{
    s_self_t *self = args;
    self->pipe = pipe;
    self->next_heartbeat = zclock_mono() + self->heartbeat_ms;
    zsock_signal(pipe, 0);
    while (!self->terminated) {
        int64_t now = zclock_mono();
        /* New tasks: look at the sockets without sleeping, then work.       */
        bool taken = s_take(self, now) > 0;
        bool push = self->queue_head && !self->paused;
        zmq_pollitem_t items[5] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
            {NULL, zkit__vqueue_fd(self->queue), ZMQ_POLLIN, 0},
            {zsock_resolve(self->workers), 0,
             (short) (self->fast ? (push ? ZMQ_POLLOUT : 0) : ZMQ_POLLIN), 0},
        };
        int n = 3, control = -1;
        if (self->sink)
            items[n++] = (zmq_pollitem_t){zsock_resolve(self->sink), 0,
                                          (short) (self->fast ? 0 : ZMQ_POLLIN), 0};
        if (zkit__ops_pollitem(self->ops, &items[n]))
            control = n++;
        if (zmq_poll(items, n, taken ? 0 : s_timeout(self, now)) == -1 && errno != EINTR)
            break;
        if (control >= 0 && (items[control].revents & ZMQ_POLLIN) &&
            zkit__ops_serve(self->ops) == -1)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            zkit__vqueue_clear(self->queue);
        if (items[0].revents & ZMQ_POLLIN)
            s_drain(self, pipe, 0);
        if (!self->fast && (items[2].revents & ZMQ_POLLIN))
            s_drain(self, self->workers, 1);
        if (!self->fast && self->sink && (items[3].revents & ZMQ_POLLIN))
            s_drain(self, self->sink, 2);
        if (!self->terminated)
            s_work(self, zclock_mono());
    }
    /* Close the sockets here, on the thread that used them. Reliable mode
       unbinds first, so a ventilator restarted in this process can bind the
       endpoint at once; what it drops is only heartbeats and tasks that are
       abandoned anyway. Fast mode must not: unbinding drops tasks queued to
       connections still in their handshake, which linger would deliver.   */
    if (!self->fast)
        zkit__pipeline_unbind(self->workers);
    zkit__socket_close(&self->workers, ZKIT__LINGER_KEEP);
    zkit__socket_close(&self->sink, ZKIT__LINGER_KEEP);
    zkit__vqueue_stop(self->queue);
}

/* ---- state --------------------------------------------------------------------------- */

zkit__ventilator_actor_t *zkit__ventilator_actor_new(const zkit_ventilator_opts_t *opts,
                                                     zkit__vqueue_t *queue, zkit_spool_t *spool)
{
    s_self_t *self = calloc(1, sizeof *self);
    if (!self)
        goto err;
    self->fast = opts->fast;
    self->heartbeat_ms = opts->heartbeat_ms;
    self->queue = queue;
    self->spool = spool;
    if (opts->name)
        snprintf(self->name, sizeof self->name, "%s", opts->name);
    else
        snprintf(self->name, sizeof self->name, "ventilator-%d", (int) getpid());
    self->env = zkit_envelope_new();
    self->batches = zlistx_new();
    self->announcements = zhashx_new();
    self->peers = zhashx_new();
    if (!self->env || !self->batches || !self->announcements || !self->peers)
        goto err;
    zhashx_set_destructor(self->announcements, zkit__vbatch_free_item);
    zhashx_set_destructor(self->peers, zkit__vbatch_free_item);
    if (!self->fast) {
        zkit__dispatcher_opts_t dopts = ZKIT__DISPATCHER_OPTS_DEFAULT;
        dopts.max_attempts = opts->max_attempts;
        dopts.heartbeat_ms = opts->heartbeat_ms;
        dopts.liveness = opts->liveness;
        dopts.attempt_timeout_ms = opts->task_timeout_ms;
        dopts.payload_free = s_task_free;
        dopts.payload_free_arg = self;
        uint8_t seed[ZKIT_ID_SIZE];
        zkit_id_generate(seed);
        memcpy(&dopts.hash_seed, seed + 8, sizeof dopts.hash_seed);
        self->dispatcher = zkit__dispatcher_new(&dopts);
        if (!self->dispatcher)
            goto err;
    }
    return self;
err:
    zkit__ventilator_actor_destroy(&self);
    errno = ENOMEM;
    return NULL;
}

void zkit__ventilator_actor_set_ops(zkit__ventilator_actor_t *self, zkit__ops_t *ops)
{
    self->ops = ops;
}

zsock_t **zkit__ventilator_actor_socket(zkit__ventilator_actor_t *self, bool sink)
{
    return sink ? &self->sink : &self->workers;
}

void zkit__ventilator_actor_destroy(zkit__ventilator_actor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_self_t *self = *self_p;
    /* Sockets are still here only when the actor never ran.                 */
    zkit__socket_close(&self->workers, 0);
    zkit__socket_close(&self->sink, 0);
    zkit__dispatcher_destroy(&self->dispatcher);
    while (self->queue_head) {
        s_task_t *task = self->queue_head;
        self->queue_head = task->next;
        s_task_free(task, self);
    }
    zhashx_destroy(&self->announcements);
    zhashx_destroy(&self->peers);
    if (self->batches) {
        for (s_batch_t *b = zlistx_first(self->batches); b; b = zlistx_next(self->batches))
            free(b);
        zlistx_destroy(&self->batches);
    }
    zkit_envelope_destroy(&self->env);
    free(self);
    *self_p = NULL;
}
