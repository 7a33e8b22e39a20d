/*  worker_stats.c: the worker's control endpoint callbacks: STATS (every
    counter of zkit_worker_stats_t and zkit__worker_stats_t, and what it
    holds now) and PAUSE/RESUME (applied by the actor's loop, see
    s_apply_pause in worker_actor.c). Both run on the actor's thread.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/pipeline_stats.h"
#include "pipeline/worker_actor.h"

#include <stdio.h>
#include <string.h>

void zkit__worker_ops_stats(zkit__stats_t *stats, void *arg)
{
    zkit__worker_setup_t *setup = arg;
    zkit__worker_actor_t *self = setup->actor;
    if (!self)
        return; /* not running (cannot happen: only its loop serves) */
    zkit__worker_snapshot_t snap = {
        .pub = self->stats,
        .internal = self->istats,
        .paused = self->paused,
        .connected = setup->vent != NULL,
        .vent = self->traffic_vent,
        .sink = self->traffic_sink,
        .waiting = self->queued,
        .unacked = self->pending ? zhashx_size(self->pending) : 0,
        .outbox = self->out_count,
        .handlers = setup->inline_handler ? 0 : setup->window,
    };
    zkit__worker_stats_fill(stats, &snap);
}

zkit__control_result_t zkit__worker_ops_command(const char *command, const char *args, char *reply,
                                                size_t reply_size, void *arg)
{
    zkit__worker_setup_t *setup = arg;
    zkit__worker_actor_t *self = setup->actor;
    if (!self)
        return ZKIT__CONTROL_ERROR; /* not running: only its loop serves */
    char who[ZKIT__PIPELINE_NAME_MAX + 16];
    snprintf(who, sizeof who, "worker %s", setup->name);
    /* The loop applies a change (s_apply_pause: the link goes or comes). */
    return zkit__control_pause_resume(command, args, reply, reply_size, &self->paused, who,
                                      "taking tasks");
}
