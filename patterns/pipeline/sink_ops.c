/*  sink_ops.c: the sink's control endpoint callback (STATS: every counter
    of zkit__sink_stats_t and the first batch's report) and the list
    replies of its pipe (dead letters, missing task seqs). All on the
    actor's thread.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/pipeline_stats.h"
#include "pipeline/sink_actor.h"

#include <stdlib.h>
#include <string.h>

typedef zkit__sink_actor_t s_self_t;

void zkit__sink_ops_stats(zkit__stats_t *stats, void *arg)
{
    s_self_t *self = arg;
    self->stats.batches = zhashx_size(self->batches);
    zkit_batch_report_t report;
    zkit__sink_first_report(self, &report);
    zkit__sink_stats_fill(stats, &self->stats, &self->traffic, &report);
}

static uint64_t s_arg_u64(zkit__pipeline_frames_t *frames)
{
    uint64_t v = 0;
    if (frames->count > 1 && zmq_msg_size(&frames->part[1]) == sizeof v)
        memcpy(&v, zmq_msg_data(&frames->part[1]), sizeof v);
    return v;
}

/* Replies [uint64 count][count entries of size bytes, at most max]. */
static void s_reply_list(s_self_t *self, int64_t count, const void *items, size_t n, size_t size)
{
    zmq_msg_t reply;
    if (zmq_msg_init_size(&reply, sizeof count + n * size)) {
        count = -2; /* the caller reports ENOMEM */
        n = 0;
        zmq_msg_init_size(&reply, sizeof count);
    }
    memcpy(zmq_msg_data(&reply), &count, sizeof count);
    if (n)
        memcpy((uint8_t *) zmq_msg_data(&reply) + sizeof count, items, n * size);
    if (zmq_msg_send(&reply, zsock_resolve(self->pipe), 0) == -1)
        zmq_msg_close(&reply);
}

static void s_dead_letters(s_self_t *self, uint64_t max)
{
    zkit__sink_batch_t *b = self->first;
    size_t count = b ? b->letter_count : 0;
    size_t n = count < max ? count : (size_t) max;
    s_reply_list(self, (int64_t) count, n ? b->letters : NULL, n, sizeof(zkit_dead_letter_t));
}

static void s_missing(s_self_t *self, uint64_t max)
{
    zkit__sink_batch_t *b = self->first;
    if (!b || !b->total) {
        s_reply_list(self, -1, NULL, 0, 0);
        return;
    }
    uint64_t missing = b->total - b->done - b->dead;
    size_t n = missing < max ? (size_t) missing : (size_t) max;
    uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
    if (n && !seqs) {
        s_reply_list(self, -2, NULL, 0, 0);
        return;
    }
    ssize_t count = zkit__sink_batch_missing(b, seqs, n);
    s_reply_list(self, count, seqs, n, sizeof *seqs);
    free(seqs);
}

void zkit__sink_reply_dead_letters(s_self_t *self, zkit__pipeline_frames_t *frames)
{
    s_dead_letters(self, s_arg_u64(frames));
}

void zkit__sink_reply_missing(s_self_t *self, zkit__pipeline_frames_t *frames)
{
    s_missing(self, s_arg_u64(frames));
}
