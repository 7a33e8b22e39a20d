/*  ventilator_batch.c: the ventilator actor's batches and its announcements
    to the sink (BATCH and DEAD, each sent again every heartbeat until the
    sink confirms it with OK). Runs on the actor's thread; the state is in
    ventilator_actor.h.

    A batch lives while tasks or announcements refer to it, or while it is
    the current one (the one the caller submits to and waits for). With a
    spool, its OPEN and CLOSE records are acknowledged when it is complete,
    and not before: resume (ventilator_spool.c) relies on it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/ventilator_actor.h"
#include "pipeline/ventilator_spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef zkit__ventilator_actor_t s_self_t;
typedef zkit__ventilator_batch_t s_batch_t;
typedef zkit__vannounce_t s_announce_t;

/* ---- batches -------------------------------------------------------------------- */

/* Every task is retired or its dead letter confirmed, and so is the batch's
   total: its records may go.                                              */
static void s_spool_done(s_self_t *self, s_batch_t *batch)
{
    zkit__vspool_ack(self->spool, batch->spool_open);
    zkit__vspool_ack(self->spool, batch->spool_close);
    batch->spool_open = batch->spool_close = 0;
}

void zkit__vbatch_unref(s_self_t *self, s_batch_t *batch)
{
    if (batch->refs)
        batch->refs--;
    if (batch->refs == 0 && batch != self->current) {
        if (batch == self->env_batch)
            self->env_batch = NULL; /* its address may be reused */
        if (batch->closed)
            s_spool_done(self, batch);
        zlistx_delete(self->batches, batch->handle);
        free(batch);
    }
}

void zkit__vbatch_report(s_self_t *self, zkit_batch_report_t *report)
{
    memset(report, 0, sizeof *report);
    s_batch_t *batch = self->current;
    if (!batch)
        return;
    memcpy(report->name, batch->name, sizeof report->name);
    report->total = batch->closed ? batch->total : 0;
    report->done = batch->done;
    report->dead = batch->dead;
    report->retried = batch->retried;
    report->started_us = batch->started_us;
    report->elapsed_us =
        batch->complete ? batch->elapsed_us : zkit_clock_usec() - batch->started_us;
    report->complete = batch->complete;
}

void zkit__vbatch_check_complete(s_self_t *self)
{
    s_batch_t *batch = self->current;
    if (batch && !batch->complete && batch->closed && batch->done + batch->dead == batch->total &&
        batch->announcing == 0) {
        batch->complete = true;
        batch->elapsed_us = zkit_clock_usec() - batch->started_us;
        s_spool_done(self, batch);
    }
}

/* ---- announcements to the sink --------------------------------------------------- */

static void s_announce_send(s_self_t *self, const s_announce_t *a)
{
    if (!self->sink)
        return;
    zkit__pipeline_msg_t msg;
    msg.cmd = a->cmd;
    memcpy(msg.batch, a->batch->name, sizeof msg.batch);
    msg.total = a->total;
    memcpy(msg.task_id, a->task_id, ZKIT_ID_SIZE);
    msg.task_seq = a->task_seq;
    msg.attempts = a->attempts;
    memcpy(msg.reason, a->reason, sizeof msg.reason);
    /* EAGAIN (sink not there yet) is fine: the heartbeat sends it again.   */
    zkit__pipeline_send_msg(self->sink, NULL, 0, &msg, &self->traffic_sink);
}

void zkit__vbatch_free_item(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

void zkit__vbatch_announce(s_self_t *self, s_announce_t *a)
{
    s_announce_send(self, a);
    if (self->fast) {
        free(a);
        return;
    }
    char token[ZKIT__PIPELINE_TOKEN_MAX + 1];
    if (a->cmd == ZKIT__PIPELINE_BATCH)
        zkit__pipeline_batch_token(a->batch->name, a->total, token);
    else
        zkit_id_to_hex(a->task_id, token);
    if (zhashx_insert(self->announcements, token, a)) {
        free(a); /* the same announcement is already pending */
        return;
    }
    a->batch->refs++;
    a->batch->announcing++;
}

static void s_announce_batch(s_self_t *self, s_batch_t *batch, uint64_t total)
{
    s_announce_t *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->cmd = ZKIT__PIPELINE_BATCH;
    a->batch = batch;
    a->total = total;
    zkit__vbatch_announce(self, a);
}

void zkit__vbatch_confirmed(s_self_t *self, const char *token)
{
    s_announce_t *a = zhashx_lookup(self->announcements, token);
    if (!a)
        return; /* a repeated OK */
    s_batch_t *batch = a->batch;
    /* A dead letter the sink has recorded is as final as a retired task.   */
    zkit__vspool_ack(self->spool, a->spool_seq);
    zhashx_delete(self->announcements, token);
    self->stats.oks++;
    batch->announcing--;
    zkit__vbatch_unref(self, batch);
}

void zkit__vbatch_resend(s_self_t *self)
{
    for (s_announce_t *a = zhashx_first(self->announcements); a;
         a = zhashx_next(self->announcements))
        s_announce_send(self, a);
}

/* ---- open and close ---------------------------------------------------------------- */

void zkit__vbatch_open(s_self_t *self, const zkit__ventilator_task_t *record)
{
    s_batch_t *batch = calloc(1, sizeof *batch);
    if (!batch || !zkit__pipeline_batch_valid(record->body, record->size)) {
        free(batch);
        zsys_error("ZKIT-PIPE-NOMEM " ZKIT__VENTILATOR_COMPONENT ": cannot open a batch");
        return;
    }
    memcpy(batch->name, record->body, record->size);
    batch->started_us = zkit_clock_usec();
    batch->spool_open = record->spool_seq;
    batch->handle = zlistx_add_end(self->batches, batch);
    s_batch_t *previous = self->current;
    self->current = batch;
    if (previous && previous->refs == 0) {
        previous->refs = 1;
        zkit__vbatch_unref(self, previous);
    }
    s_announce_batch(self, batch, 0);
}

void zkit__vbatch_close(s_self_t *self, const zkit__ventilator_task_t *record)
{
    s_batch_t *batch = self->current;
    if (!batch || batch->closed)
        return;
    batch->closed = true;
    batch->total = record->seq ? record->seq : batch->submitted;
    batch->spool_close = record->spool_seq;
    /* Resumed from a spool: the tasks retired before the restart were not
       taken again, and count as done.                                      */
    if (batch->total > batch->received)
        batch->done += batch->total - batch->received;
    s_announce_batch(self, batch, batch->total);
}
