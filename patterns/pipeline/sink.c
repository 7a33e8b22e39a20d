/*  sink.c: zkit_sink_*, the sink (see zkit_sink.h).

    One bound socket: a ROUTER in reliable mode (workers send RESULT, the
    ventilator BATCH and DEAD), a PULL in fast mode (bare result envelopes
    and BATCH). A result is stored (the handler accepts it) at most once per
    (batch, task seq) and acknowledged only once stored; a repeat is
    acknowledged again without being stored. A batch that completes is
    announced to its ventilator (COMPLETE, resent every second until it
    answers OK), so a task whose DONE was lost still ends there. Batches are
    tracked in
    sink_batch.c; the one zkit_sink_wait and zkit_sink_report talk about is
    the first batch the sink hears of.

    Per result the sink does no allocation and no table lookup in steady
    state: the envelope is decoded into one it reuses (the body stays in the
    received frame), and the last batch and the last (src) stream are kept
    at hand, since results come in long runs of one batch from few workers.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/sink_actor.h"
#include "core/socket.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_COMPONENT   "sink"
#define S_DRAIN       256
#define S_BATCHES_MAX 64 /* batches tracked at once */
/* COMPLETE is resent this often until confirmed: the default heartbeat. The
   sink has no heartbeat of its own, and a resend is only for a COMPLETE
   lost while the ventilator was reconnecting.                              */
#define S_COMPLETE_RESEND_MS 1000
#define S_STREAMS_MAX        1024 /* fast mode: (src) streams tracked for gaps */
/* Per-task tables of all batches together: 2 bits a task, so 64 MiB holds
   two batches of ZKIT_BATCH_TASKS_MAX and then some.                       */
#define S_TABLES_MAX (64u * 1024 * 1024)

typedef zkit__sink_actor_t s_self_t;

struct _zkit_sink_t {
    zactor_t *actor;
    s_self_t *state;
    char endpoint[256];
};

/* ---- batches ------------------------------------------------------------------- */

static void s_batch_free(void **item_p)
{
    zkit__sink_batch_destroy((zkit__sink_batch_t **) item_p);
}

/* Room for one more batch: forgets the oldest complete one (never the first).
   Returns false when every tracked batch is still running.                 */
static bool s_make_room(s_self_t *self)
{
    if (zhashx_size(self->batches) < S_BATCHES_MAX)
        return true;
    for (const char *name = zlistx_first(self->order); name; name = zlistx_next(self->order)) {
        zkit__sink_batch_t *batch = zhashx_lookup(self->batches, name);
        if (batch && batch->complete && batch != self->first) {
            if (batch == self->last)
                self->last = NULL;
            self->budget += zkit__sink_batch_table_bytes(batch);
            if (batch->completing)
                self->stats.completing--; /* told long enough */
            zhashx_delete(self->batches, name);
            zlistx_delete(self->order, zlistx_cursor(self->order));
            return true;
        }
    }
    return false;
}

static zkit__sink_batch_t *s_batch(s_self_t *self, const char *name)
{
    zkit__sink_batch_t *batch = zhashx_lookup(self->batches, name);
    if (batch)
        return batch;
    if (!s_make_room(self)) {
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_LIMIT, S_COMPONENT,
                           "too many batches at once");
        return NULL;
    }
    batch = zkit__sink_batch_new(name);
    if (!batch)
        return NULL;
    if (zhashx_insert(self->batches, name, batch)) {
        zkit__sink_batch_destroy(&batch);
        return NULL;
    }
    char *copy = strdup(name);
    if (copy)
        zlistx_add_end(self->order, copy);
    if (!self->first)
        self->first = batch;
    return batch;
}

/* ---- results --------------------------------------------------------------------- */

static void s_reply(s_self_t *self, zmq_msg_t *rid, zkit__pipeline_msg_t *msg)
{
    if (self->fast)
        return;
    zkit__pipeline_send_msg(self->sock, zmq_msg_data(rid), zmq_msg_size(rid), msg, &self->traffic);
}

static void s_ack(s_self_t *self, zmq_msg_t *rid, const uint8_t *id)
{
    zkit__pipeline_msg_t msg;
    msg.cmd = ZKIT__PIPELINE_ACK;
    memcpy(msg.task_id, id, ZKIT_ID_SIZE);
    s_reply(self, rid, &msg);
    self->stats.acks += !self->fast;
}

static void s_ok(s_self_t *self, zmq_msg_t *rid, const char *token)
{
    zkit__pipeline_msg_t msg;
    msg.cmd = ZKIT__PIPELINE_OK;
    snprintf(msg.token, sizeof msg.token, "%s", token);
    s_reply(self, rid, &msg);
    self->stats.oks += !self->fast;
}

/* Sends COMPLETE to the peer that announced the batch. A failed send
   (EHOSTUNREACH: that peer is not connected now) is not an error: the
   ventilator keeps its routing id when it reconnects, and the resend, a
   heartbeat later, reaches it then.                                        */
static void s_complete_send(s_self_t *self, zkit__sink_batch_t *batch, int64_t now)
{
    zkit__pipeline_msg_t msg;
    msg.cmd = ZKIT__PIPELINE_COMPLETE;
    memcpy(msg.batch, batch->name, sizeof msg.batch);
    msg.total = batch->total;
    zkit__pipeline_send_msg(self->sock, batch->vent_rid, batch->vent_rid_size, &msg,
                            &self->traffic);
    self->stats.completes++;
    batch->complete_at_ms = now + S_COMPLETE_RESEND_MS;
}

/* Tells the ventilator that the complete batch is complete, now and again
   every S_COMPLETE_RESEND_MS until it confirms. Without this a ventilator
   whose last DONE was lost (the worker died between our ACK and its DONE)
   would wait for ever once we are gone.                                    */
static void s_complete(s_self_t *self, zkit__sink_batch_t *batch)
{
    if (self->fast || !batch->complete || batch->vent_rid_size == 0)
        return;
    if (!batch->completing) {
        batch->completing = true;
        self->stats.completing++;
    }
    s_complete_send(self, batch, zclock_mono());
}

/* After a change to the batch: if it just completed, says so.              */
static void s_check(s_self_t *self, zkit__sink_batch_t *batch)
{
    if (!batch->complete && zkit__sink_batch_check(batch))
        s_complete(self, batch);
}

/* An OK from the ventilator: the COMPLETE with this token was heard.      */
static void s_complete_confirmed(s_self_t *self, const char *token)
{
    if (!self->stats.completing)
        return; /* a repeated OK */
    for (zkit__sink_batch_t *b = zhashx_first(self->batches); b; b = zhashx_next(self->batches)) {
        char mine[ZKIT__PIPELINE_TOKEN_MAX + 1];
        if (!b->completing)
            continue;
        zkit__pipeline_batch_token(b->name, b->total, mine);
        if (strcmp(mine, token) == 0) {
            b->completing = false;
            self->stats.completing--;
            self->stats.confirmed++;
            return;
        }
    }
}

/* Resends the COMPLETEs that are due; returns when the next one is.        */
static int64_t s_complete_resend(s_self_t *self, int64_t now)
{
    int64_t due = INT64_MAX;
    if (!self->stats.completing)
        return due;
    for (zkit__sink_batch_t *b = zhashx_first(self->batches); b; b = zhashx_next(self->batches)) {
        if (!b->completing)
            continue;
        if (now >= b->complete_at_ms)
            s_complete_send(self, b, now);
        if (b->complete_at_ms < due)
            due = b->complete_at_ms;
    }
    return due;
}

/* The batch named data[size] (valid), from the last result's or the table. */
static zkit__sink_batch_t *s_result_batch(s_self_t *self, const void *data, size_t size)
{
    zkit__sink_batch_t *last = self->last;
    if (last && strlen(last->name) == size && memcmp(last->name, data, size) == 0)
        return last;
    char name[ZKIT_BATCH_NAME_MAX + 1];
    memcpy(name, data, size);
    name[size] = '\0';
    self->last = s_batch(self, name);
    return self->last;
}

static void s_count_gap(s_self_t *self, zkit__sink_batch_t *batch, const char *src, uint64_t seq)
{
    if (!src)
        return;
    uint64_t *last = NULL;
    if (self->last_stream && strcmp(self->last_src, src) == 0)
        last = self->last_stream;
    else if ((last = zhashx_lookup(self->streams, src)) != NULL &&
             strlen(src) < sizeof self->last_src) {
        /* Streams are never forgotten: the pointer stays valid.           */
        strcpy(self->last_src, src);
        self->last_stream = last;
    }
    if (!last) {
        if (zhashx_size(self->streams) >= S_STREAMS_MAX || !(last = malloc(sizeof *last)))
            return;
        /* A stream's first envelope need not be seq 1 (a worker restarted
           its counter long ago); gaps count from what was seen.            */
        *last = seq;
        if (zhashx_insert(self->streams, src, last))
            free(last);
        return;
    }
    if (seq > *last + 1)
        batch->gaps += seq - *last - 1;
    if (seq > *last)
        *last = seq;
}

/* A RESULT (reliable, rid set) or a bare result envelope (fast mode). */
static void s_result(s_self_t *self, zmq_msg_t *rid, zmq_msg_t *frame)
{
    zkit_envelope_t *env = self->env;
    if (zkit_envelope_decode_bytes(env, zmq_msg_data(frame), zmq_msg_size(frame))) {
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_ENVELOPE, S_COMPONENT,
                           zkit_envelope_error_detail(env));
        return;
    }
    zkit_value_t corr, batch_name, task_seq;
    if (zkit_envelope_corr(env, &corr) || corr.type != ZKIT_VALUE_BIN ||
        corr.size != ZKIT_ID_SIZE || zkit_envelope_batch(env, &batch_name) ||
        !zkit__pipeline_batch_valid(batch_name.data, batch_name.size) ||
        zkit_envelope_header(env, "task-seq", &task_seq) || task_seq.type != ZKIT_VALUE_INT ||
        task_seq.i < 1 || (uint64_t) task_seq.i > ZKIT_BATCH_TASKS_MAX) {
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_META, S_COMPONENT,
                           "result without corr (16 bytes), batch or task-seq");
        goto done;
    }
    uint8_t id[ZKIT_ID_SIZE];
    memcpy(id, corr.data, ZKIT_ID_SIZE);
    uint64_t seq = (uint64_t) task_seq.i;
    self->stats.results++;
    zkit__sink_batch_t *batch = s_result_batch(self, batch_name.data, batch_name.size);
    if (!batch)
        goto done;
    if (self->fast)
        s_count_gap(self, batch, zkit_envelope_src(env), zkit_envelope_seq(env));
    if (zkit__sink_batch_state(batch, seq) == ZKIT__SINK_STORED) {
        batch->duplicates++;
        self->stats.duplicates++;
        s_ack(self, rid, id);
        goto done;
    }
    if (zkit__sink_batch_reserve(batch, seq, &self->budget)) {
        const char *what = errno == ERANGE   ? "task-seq beyond the batch's total"
                           : errno == ENOSPC ? "task tables at their limit"
                                             : "no memory";
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_LIMIT, S_COMPONENT, what);
        goto done;
    }
    if (self->handler && self->handler(env, self->handler_arg) != 0) {
        /* Not stored, so not acknowledged: the worker sends it again.      */
        self->stats.refused++;
        goto done;
    }
    self->stats.stored++;
    zkit__sink_batch_stored(batch, seq, zkit_envelope_att(env));
    s_ack(self, rid, id);
    s_check(self, batch);
done:
    zkit_envelope_reset(env);
}

/* ---- the ventilator's announcements ------------------------------------------------ */

static void s_batch_announced(s_self_t *self, zmq_msg_t *rid, const zkit__pipeline_msg_t *msg)
{
    zkit__sink_batch_t *batch = s_batch(self, msg->batch);
    if (!batch)
        return; /* not confirmed: the ventilator asks again */
    uint64_t unlogged = 0;
    if (zkit__sink_batch_set_total(batch, msg->total) &&
        zkit__ratelimit(&self->total_log, zclock_mono(), &unlogged))
        zsys_warning("ZKIT-PIPE-TOTAL " S_COMPONENT ": batch %s: total %" PRIu64
                     " refused (%s), keeping %" PRIu64 " (%" PRIu64 " more not logged)",
                     batch->name, msg->total,
                     errno == EEXIST ? "another total was announced" : "results beyond it",
                     batch->total, unlogged);
    if (rid && zmq_msg_size(rid) <= sizeof batch->vent_rid) {
        /* The announcer is whom COMPLETE goes to: the last one, since a
           ventilator that reconnected may have a new routing id.           */
        batch->vent_rid_size = zmq_msg_size(rid);
        memcpy(batch->vent_rid, zmq_msg_data(rid), batch->vent_rid_size);
    }
    char token[ZKIT__PIPELINE_TOKEN_MAX + 1];
    zkit__pipeline_batch_token(msg->batch, msg->total, token);
    s_ok(self, rid, token);
    /* Complete already (a ventilator that asks again, or one that reuses
       the name of a batch stored before): COMPLETE again, to this sender.  */
    zkit__sink_batch_check(batch);
    s_complete(self, batch);
}

static void s_dead_announced(s_self_t *self, zmq_msg_t *rid, const zkit__pipeline_msg_t *msg)
{
    zkit__sink_batch_t *batch = s_batch(self, msg->batch);
    if (!batch)
        return;
    /* A result stored before stands; a repeat changes nothing.             */
    if (zkit__sink_batch_state(batch, msg->task_seq) == ZKIT__SINK_NONE) {
        if (zkit__sink_batch_reserve(batch, msg->task_seq, &self->budget)) {
            if (errno != ERANGE)
                return; /* no room now: not confirmed, asked again later */
            /* Beyond the total: confirmed (a resend would not change it),
               counted, not recorded.                                       */
            zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_LIMIT, S_COMPONENT,
                               "dead task-seq beyond the batch's total");
        }
        else if (zkit__sink_batch_dead(batch, msg->task_seq, msg->task_id, msg->attempts,
                                       msg->reason))
            return;
        else
            self->stats.dead++;
    }
    char token[33];
    zkit_id_to_hex(msg->task_id, token);
    s_ok(self, rid, token);
    s_check(self, batch);
}

static void s_message(s_self_t *self, zkit__pipeline_frames_t *frames)
{
    size_t first = self->fast ? 0 : 1;
    zmq_msg_t *rid = self->fast ? NULL : &frames->part[0];
    if (!self->fast && (frames->count < 1 || zmq_msg_size(rid) == 0)) {
        zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_FRAMES, S_COMPONENT, "routing id");
        return;
    }
    zkit__pipeline_msg_t msg;
    zkit__pipeline_bad_reason_t why;
    if (zkit__pipeline_parse(frames, first, &msg, &why)) {
        zkit__pipeline_bad(&self->stats.bad, why, S_COMPONENT, NULL);
        return;
    }
    switch (msg.cmd) {
    case ZKIT__PIPELINE_NONE:
        if (!self->fast)
            goto unexpected;
        s_result(self, NULL, msg.envelope);
        break;
    case ZKIT__PIPELINE_RESULT:
        if (self->fast)
            goto unexpected;
        s_result(self, rid, msg.envelope);
        break;
    case ZKIT__PIPELINE_BATCH: s_batch_announced(self, rid, &msg); break;
    case ZKIT__PIPELINE_DEAD:
        if (self->fast)
            goto unexpected;
        s_dead_announced(self, rid, &msg);
        break;
    case ZKIT__PIPELINE_OK:
        if (self->fast)
            goto unexpected;
        s_complete_confirmed(self, msg.token);
        break;
    default: goto unexpected;
    }
    return;
unexpected:
    zkit__pipeline_bad(&self->stats.bad, ZKIT__PIPELINE_BAD_UNEXPECTED, S_COMPONENT,
                       zkit__pipeline_cmd_name(msg.cmd));
}

/* ---- timers and the pipe ------------------------------------------------------------- */

void zkit__sink_first_report(s_self_t *self, zkit_batch_report_t *report)
{
    if (self->first)
        zkit__sink_batch_report(self->first, report);
    else
        memset(report, 0, sizeof *report);
}

/* Marks batches past their timeout; returns when the next one is due.      */
static int64_t s_timeouts(s_self_t *self, int64_t now)
{
    int64_t due = INT64_MAX;
    if (!self->batch_timeout_ms)
        return due;
    for (zkit__sink_batch_t *b = zhashx_first(self->batches); b; b = zhashx_next(self->batches)) {
        if (b->complete || b->timed_out)
            continue;
        int64_t at = b->started_ms + self->batch_timeout_ms;
        if (now >= at) {
            b->timed_out = true;
            if (b->total)
                zsys_warning("ZKIT-PIPE-BATCH-TIMEOUT " S_COMPONENT ": batch %s incomplete "
                             "after %" PRId64 " ms: %" PRIu64 " of %" PRIu64 " tasks missing",
                             b->name, self->batch_timeout_ms, b->total - b->done - b->dead,
                             b->total);
            else
                zsys_warning("ZKIT-PIPE-BATCH-TIMEOUT " S_COMPONENT ": batch %s incomplete "
                             "after %" PRId64 " ms: total never announced, %" PRIu64 " stored",
                             b->name, self->batch_timeout_ms, b->done);
        }
        else if (at < due)
            due = at;
    }
    return due;
}

static int64_t s_work(s_self_t *self, int64_t now)
{
    int64_t due = s_timeouts(self, now);
    int64_t resend = s_complete_resend(self, now);
    if (resend < due)
        due = resend;
    if (self->waiter.active) {
        zkit_batch_report_t report;
        zkit__sink_first_report(self, &report);
        zkit__sink_batch_t *first = self->first;
        if (first && first->complete)
            zkit__pipeline_waiter_reply(&self->waiter, self->pipe, 0, 0, &report);
        else if ((first && first->timed_out) || now >= self->waiter.deadline_ms)
            zkit__pipeline_waiter_reply(&self->waiter, self->pipe, -1, ETIMEDOUT, &report);
        else if (self->waiter.deadline_ms < due)
            due = self->waiter.deadline_ms;
    }
    return due;
}

static void s_pipe_message(s_self_t *self, zkit__pipeline_frames_t *frames, int64_t now)
{
    zmq_msg_t *cmd = &frames->part[0];
    size_t size = zmq_msg_size(cmd);
    const char *p = zmq_msg_data(cmd);
#define S_IS(word) (size == sizeof word - 1 && memcmp(p, word, size) == 0)
    if (S_IS("WAIT")) {
        if (!zkit__pipeline_waiter_start(&self->waiter, frames->count > 1 ? &frames->part[1] : NULL,
                                         now))
            zkit__pipeline_reply(self->pipe, "", 0);
    }
    else if (S_IS("UNWAIT")) {
        zkit_batch_report_t report;
        zkit__sink_first_report(self, &report);
        zkit__pipeline_waiter_reply(&self->waiter, self->pipe, -1, EINTR, &report);
    }
    else if (S_IS("REPORT")) {
        zkit__pipeline_status_t status = {.rc = 0};
        zkit__sink_first_report(self, &status.report);
        zkit__pipeline_reply(self->pipe, &status, sizeof status);
    }
    else if (S_IS("DEAD"))
        zkit__sink_reply_dead_letters(self, frames);
    else if (S_IS("MISSING"))
        zkit__sink_reply_missing(self, frames);
    else if (S_IS("STATS")) {
        self->stats.batches = zhashx_size(self->batches);
        zkit__pipeline_reply(self->pipe, &self->stats, sizeof self->stats);
    }
    else if (S_IS("$TERM"))
        self->terminated = true;
#undef S_IS
}

/* ---- the actor --------------------------------------------------------------------- */

static void s_actor(zsock_t *pipe, void *args)
{
    s_self_t *self = args;
    self->pipe = pipe;
    zsock_signal(pipe, 0);
    int64_t due = INT64_MAX;
    while (!self->terminated) {
        int64_t now = zclock_mono();
        long timeout = due == INT64_MAX      ? -1
                       : due <= now          ? 0
                       : due - now > INT_MAX ? INT_MAX
                                             : (long) (due - now);
        zmq_pollitem_t items[3] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
            {zsock_resolve(self->sock), 0, ZMQ_POLLIN, 0},
        };
        int n = 2 + zkit__ops_pollitem(self->ops, &items[2]);
        if (zmq_poll(items, n, timeout) == -1 && errno != EINTR)
            break;
        if (n > 2 && (items[2].revents & ZMQ_POLLIN) && zkit__ops_serve(self->ops) == -1)
            break;
        for (int i = 0; i < S_DRAIN && (items[0].revents & ZMQ_POLLIN) && !self->terminated; i++) {
            zkit__pipeline_frames_t frames;
            if (zkit__pipeline_recv(pipe, &frames, ZMQ_DONTWAIT))
                break;
            s_pipe_message(self, &frames, zclock_mono());
            zkit__pipeline_frames_close(&frames);
        }
        for (int i = 0; i < S_DRAIN && (items[1].revents & ZMQ_POLLIN) && !self->terminated; i++) {
            zkit__pipeline_frames_t frames;
            if (zkit__pipeline_recv(self->sock, &frames, ZMQ_DONTWAIT))
                break;
            zkit__traffic_in(&self->traffic, frames.bytes);
            s_message(self, &frames);
            zkit__pipeline_frames_close(&frames);
        }
        due = s_work(self, zclock_mono());
    }
    /* On the thread that used it; ACKs still queued get the short linger.  */
    zkit__pipeline_unbind(self->sock);
    zkit__socket_close(&self->sock, ZKIT__LINGER_KEEP);
}

/* ---- API ----------------------------------------------------------------------------- */

static void s_state_destroy(s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (!self)
        return;
    zkit__socket_close(&self->sock, 0);
    zkit__ops_destroy(&self->ops); /* after the socket it secured */
    zhashx_destroy(&self->batches);
    zlistx_destroy(&self->order);
    zhashx_destroy(&self->streams);
    zkit_envelope_destroy(&self->env);
    free(self);
    *self_p = NULL;
}

static void s_free_item(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

static s_self_t *s_state_new(const zkit_sink_opts_t *opts, char *endpoint, size_t size)
{
    s_self_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->fast = opts->fast;
    self->batch_timeout_ms = opts->batch_timeout_ms;
    self->handler = opts->handler;
    self->handler_arg = opts->handler_arg;
    self->budget = S_TABLES_MAX;
    self->env = zkit_envelope_new();
    self->batches = zhashx_new();
    self->order = zlistx_new();
    self->streams = zhashx_new();
    if (!self->env || !self->batches || !self->order || !self->streams) {
        s_state_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    zhashx_set_destructor(self->batches, s_batch_free);
    zlistx_set_destructor(self->order, s_free_item);
    zhashx_set_destructor(self->streams, s_free_item);
    self->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                    .component = S_COMPONENT,
                                                    .stats_fn = zkit__sink_ops_stats,
                                                    .arg = self});
    if (!self->ops) {
        int err = errno;
        s_state_destroy(&self);
        errno = err;
        return NULL;
    }
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    /* A PULL sends nothing; an ACK lost at shutdown only means a resend.   */
    sopts.linger_ms = self->fast ? 0 : ZKIT__PIPELINE_LINGER_SHORT_MS;
    self->sock = zkit__socket_new(self->fast ? ZMQ_PULL : ZMQ_ROUTER, &sopts);
    /* Workers and the ventilator connect here: a CURVE/ZAP server when
       configured.                                                          */
    if (!self->sock || zkit__ops_attach(self->ops, self->sock, opts->bind, true)) {
        int err = errno;
        s_state_destroy(&self);
        errno = err;
        return NULL;
    }
    if (!self->fast) {
        zsock_set_router_mandatory(self->sock, 1);
        /* A ventilator keeps its routing id when it reconnects; its new
           connection takes the id over from the old one, which libzmq may
           not have seen die yet, so COMPLETE follows it at once.           */
        zsock_set_router_handover(self->sock, 1);
    }
    if (zkit__socket_last_endpoint(self->sock, endpoint, size))
        endpoint[0] = '\0';
    return self;
}

zkit_sink_t *zkit_sink_new(const zkit_sink_opts_t *opts)
{
    if (!opts || !opts->bind || !*opts->bind) {
        zsys_error("ZKIT-PIPE-OPTS sink: bind is required");
        errno = EINVAL;
        return NULL;
    }
    zkit_sink_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->state = s_state_new(opts, self->endpoint, sizeof self->endpoint);
    if (self->state)
        self->actor = zactor_new(s_actor, self->state);
    if (!self->actor) {
        int err = self->state ? ENOMEM : errno;
        s_state_destroy(&self->state);
        free(self);
        errno = err;
        return NULL;
    }
    return self;
}

void zkit_sink_destroy(zkit_sink_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_sink_t *self = *self_p;
    zactor_destroy(&self->actor);
    s_state_destroy(&self->state);
    free(self);
    *self_p = NULL;
}

int zkit_sink_wait(zkit_sink_t *self, int timeout_ms, zkit_batch_report_t *report)
{
    return zkit__pipeline_call_wait(self->actor, timeout_ms, report);
}

int zkit_sink_report(zkit_sink_t *self, zkit_batch_report_t *report)
{
    zkit_batch_report_t ignored;
    return zkit__pipeline_call_report(self->actor, report ? report : &ignored);
}

/* Asks for a list; copies up to max entries of size bytes into out.       */
static ssize_t s_list(zkit_sink_t *self, const char *cmd, void *out, size_t max, size_t size)
{
    uint64_t arg = max;
    zmq_msg_t reply;
    if (zkit__pipeline_call_msg(self->actor, cmd, &arg, sizeof arg, &reply))
        return -1;
    int64_t count = -3;
    size_t bytes = zmq_msg_size(&reply);
    if (bytes >= sizeof count)
        memcpy(&count, zmq_msg_data(&reply), sizeof count);
    if (count >= 0) {
        size_t n = (bytes - sizeof count) / size;
        if (n > max)
            n = max;
        if (n)
            memcpy(out, (uint8_t *) zmq_msg_data(&reply) + sizeof count, n * size);
    }
    zmq_msg_close(&reply);
    if (count < 0) {
        errno = count == -1 ? EINVAL : count == -2 ? ENOMEM : ECANCELED;
        return -1;
    }
    return (ssize_t) count;
}

ssize_t zkit_sink_dead_letters(zkit_sink_t *self, zkit_dead_letter_t *letters, size_t max)
{
    return s_list(self, "DEAD", letters, letters ? max : 0, sizeof *letters);
}

ssize_t zkit_sink_missing(zkit_sink_t *self, uint64_t *seqs, size_t max)
{
    return s_list(self, "MISSING", seqs, seqs ? max : 0, sizeof *seqs);
}

const char *zkit_sink_endpoint(zkit_sink_t *self)
{
    return self && self->endpoint[0] ? self->endpoint : NULL;
}

const char *zkit_sink_control(zkit_sink_t *self)
{
    return self && self->state ? zkit__ops_control_endpoint(self->state->ops) : NULL;
}

int zkit__sink_stats(zkit_sink_t *self, zkit__sink_stats_t *stats)
{
    ssize_t size = zkit__pipeline_call(self->actor, "STATS", NULL, 0, stats, sizeof *stats);
    if (size != (ssize_t) sizeof *stats) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}
