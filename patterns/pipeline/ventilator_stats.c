/*  ventilator_stats.c: the ventilator's control endpoint callbacks: STATS
    (every counter of zkit__ventilator_stats_t and of its dispatcher, the
    current batch's report, the workers as peers) and PAUSE/RESUME. Both
    run on the actor's thread (zkit__ops_serve in its poll loop). Metric
    names: docs/pipeline-protocol.md, section 8.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/pipeline_stats.h"
#include "pipeline/ventilator_actor.h"

#include <stdio.h>
#include <string.h>

typedef zkit__vrid_t s_rid_t;

static const char *s_reason_label(int reason)
{
    switch (reason) {
    case ZKIT__DISPATCHER_NACKED: return "nacked";
    case ZKIT__DISPATCHER_PEER_DIED: return "peer_died";
    case ZKIT__DISPATCHER_TIMED_OUT: return "timed_out";
    case ZKIT__DISPATCHER_EXPIRED: return "expired";
    default: return "other";
    }
}

static void s_by_reason(zkit__stats_t *st, const char *name, const uint64_t *by, const char *help)
{
    for (int r = 0; r < ZKIT__DISPATCHER_REASONS_; r++)
        zkit__stats_counter1(st, name, "reason", s_reason_label(r), by[r]);
    zkit__stats_help(st, name, help);
}

#define S_DISP(field, name, help)                                                                  \
    ZKIT__PSTATS_COUNTER(zkit__dispatcher_counters_t, field, name, help)
#define S_DNOW(field, name, help) ZKIT__PSTATS_GAUGE(zkit__dispatcher_counters_t, field, name, help)
/* The totals requeued and dead_lettered are the sums over reasons (below). */
static const zkit__pstats_field_t s_dispatcher_fields[] = {
    S_DISP(submitted, "tasks_submitted", "Tasks taken in for dispatch"),
    S_DISP(dispatched, "task_attempts", "Attempts handed to workers"),
    S_DISP(acked, "tasks_acked", "Tasks retired (DONE or COMPLETE)"),
    S_DISP(late_acks, "late_acks",
           "Of those, retired while back in the queue after a failed attempt"),
    S_DISP(nacked, "nacks", "FAILs that failed an attempt"),
    S_DISP(duplicate_acks, "duplicate_acks", "Acks for a task not held"),
    S_DISP(rejected_acks, "rejected_acks", "Acks for a task never handed out"),
    S_DISP(stale_nacks, "stale_nacks", "Nacks for a task not in flight to that worker"),
    S_DISP(peers_expired, "workers_expired", "Workers presumed dead by liveness"),
    S_DISP(peers_gone, "workers_gone", "Workers removed because a send to them failed"),
    S_DNOW(queued, "tasks_queued", "Tasks waiting for a worker"),
    S_DNOW(in_flight, "tasks_in_flight", "Tasks handed to a worker and not done yet"),
    S_DNOW(dead_pending, "dead_pending", "Dead letters not yet announced"),
    S_DNOW(peers, "workers_registered", "Workers the dispatcher knows"),
    S_DNOW(peers_available, "workers_available", "Workers with a free slot in their window"),
};

#define S_VENT(field, name, help) ZKIT__PSTATS_COUNTER(zkit__ventilator_stats_t, field, name, help)
static const zkit__pstats_field_t s_ventilator_fields[] = {
    S_VENT(readies, "readies", "READY received from workers"),
    S_VENT(disconnects, "disconnects_sent", "DISCONNECT sent to unknown workers"),
    S_VENT(duplicate_done, "duplicate_done", "DONE for a task not held"),
    S_VENT(stale_fail, "stale_fail", "FAIL for an attempt that had already ended"),
    S_VENT(send_failed, "send_failed", "TASK that could not be sent (worker gone or full)"),
    S_VENT(oks, "sink_oks", "OK received from the sink"),
    S_VENT(completes, "sink_completes", "COMPLETE received from the sink"),
    S_VENT(sink_retired, "sink_retired", "Tasks retired by a COMPLETE rather than a DONE"),
};

#define S_COUNT(array) (sizeof(array) / sizeof(array)[0])

static void s_dispatcher(zkit__stats_t *st, const zkit__dispatcher_counters_t *d)
{
    zkit__pstats_fields(st, d, s_dispatcher_fields, S_COUNT(s_dispatcher_fields));
    s_by_reason(st, "tasks_requeued", d->requeued_by, "Failed attempts put back in the queue");
    s_by_reason(st, "tasks_dead_lettered", d->dead_lettered_by, "Tasks dead-lettered");
}

/* The workers, with when each was last heard from (the dispatcher's clock
   is monotonic: turned into wall-clock time here).                         */
static void s_peers(zkit__stats_t *st, zkit__ventilator_actor_t *self)
{
    if (!self->dispatcher)
        return;
    int64_t mono = zclock_mono();
    int64_t wall = (int64_t) zkit_clock_usec();
    for (s_rid_t *rid = zhashx_first(self->peers); rid; rid = zhashx_next(self->peers)) {
        zkit__dispatcher_peer_info_t info;
        if (zkit__dispatcher_peer_info(self->dispatcher, rid->data, rid->size, &info))
            continue;
        int64_t ago_us = (mono - info.last_seen_ms) * 1000;
        int64_t seen = wall - (ago_us > 0 ? ago_us : 0);
        zkit__stats_peer(st, rid->data, rid->size, (uint64_t) (seen > 0 ? seen : 0));
    }
}

void zkit__ventilator_ops_stats(zkit__stats_t *st, void *arg)
{
    zkit__ventilator_actor_t *self = arg;
    const zkit__ventilator_stats_t *s = &self->stats;
    zkit__pstats_bad(st, &s->bad);
    zkit__pstats_fields(st, s, s_ventilator_fields, S_COUNT(s_ventilator_fields));
    zkit__pstats_gauge(st, "workers", (int64_t) zhashx_size(self->peers), "Workers known now");
    zkit__pstats_gauge(st, "paused", self->paused, "1 while paused by the control endpoint");
    if (self->dispatcher)
        s_dispatcher(st, zkit__dispatcher_counters(self->dispatcher));
    else {
        zkit__dispatcher_counters_t none;
        memset(&none, 0, sizeof none);
        s_dispatcher(st, &none);
    }
    zkit_batch_report_t report;
    zkit__vbatch_report(self, &report);
    zkit__pstats_report(st, &report);
    zkit__traffic_report(st, "workers", &self->traffic_workers);
    if (self->sink)
        zkit__traffic_report(st, "sink", &self->traffic_sink);
    s_peers(st, self);
}

zkit__control_result_t zkit__ventilator_ops_command(const char *command, const char *args,
                                                    char *reply, size_t reply_size, void *arg)
{
    zkit__ventilator_actor_t *self = arg;
    char who[ZKIT__PIPELINE_NAME_MAX + 16];
    snprintf(who, sizeof who, ZKIT__VENTILATOR_COMPONENT " %s", self->name);
    /* Nothing else on a change: the loop hands out tasks or not by the flag. */
    return zkit__control_pause_resume(command, args, reply, reply_size, &self->paused, who,
                                      "task hand-out");
}
