/*  pipeline_stats.c: the STATS metrics of the worker and the sink, and the
    helpers the ventilator's (ventilator_stats.c) shares with them. Names
    and meanings: docs/pipeline-protocol.md, section 8.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/pipeline_stats.h"

#include <string.h>

#define S_COUNT(array) (sizeof(array) / sizeof(array)[0])

static uint64_t s_field(const void *base, const zkit__pstats_field_t *f)
{
    uint64_t v;
    memcpy(&v, (const char *) base + f->offset, sizeof v);
    return v;
}

static int64_t s_capped(uint64_t value)
{
    return value > INT64_MAX ? INT64_MAX : (int64_t) value;
}

void zkit__pstats_fields(zkit__stats_t *st, const void *base, const zkit__pstats_field_t *fields,
                         size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const zkit__pstats_field_t *f = &fields[i];
        uint64_t v = s_field(base, f);
        int rc = f->gauge ? zkit__stats_gauge(st, f->name, s_capped(v))
                          : zkit__stats_counter(st, f->name, v);
        if (rc == 0)
            zkit__stats_help(st, f->name, f->help);
    }
}

void zkit__pstats_gauge(zkit__stats_t *st, const char *name, int64_t value, const char *help)
{
    if (zkit__stats_gauge(st, name, value) == 0)
        zkit__stats_help(st, name, help);
}

const char *zkit__pstats_bad_label(zkit__pipeline_bad_reason_t why)
{
    switch (why) {
    case ZKIT__PIPELINE_BAD_FRAMES: return "frames";
    case ZKIT__PIPELINE_BAD_COMMAND: return "command";
    case ZKIT__PIPELINE_BAD_FIELD: return "field";
    case ZKIT__PIPELINE_BAD_ENVELOPE: return "envelope";
    case ZKIT__PIPELINE_BAD_META: return "meta";
    case ZKIT__PIPELINE_BAD_UNEXPECTED: return "unexpected";
    case ZKIT__PIPELINE_BAD_LIMIT: return "limit";
    default: return "other";
    }
}

void zkit__pstats_bad(zkit__stats_t *st, const zkit__pipeline_bad_t *bad)
{
    for (int why = 0; why < ZKIT__PIPELINE_BAD_REASONS_; why++)
        zkit__stats_counter1(st, "input_dropped", "reason",
                             zkit__pstats_bad_label((zkit__pipeline_bad_reason_t) why),
                             bad->count[why]);
    zkit__stats_help(st, "input_dropped",
                     "Messages received and dropped as malformed or unexpected, by reason");
}

#define S_BATCH(field, name, help) ZKIT__PSTATS_GAUGE(zkit_batch_report_t, field, name, help)
static const zkit__pstats_field_t s_batch_fields[] = {
    S_BATCH(total, "batch_tasks", "Tasks in the batch (0 while not known)"),
    S_BATCH(done, "batch_done", "Tasks of the batch whose result is stored"),
    S_BATCH(dead, "batch_dead", "Tasks of the batch dead-lettered"),
    S_BATCH(retried, "batch_retried", "Attempts beyond the first, summed"),
    S_BATCH(duplicates, "batch_duplicates", "Results dropped as duplicates"),
    S_BATCH(gaps, "batch_gaps", "Fast mode: envelopes missing in streams"),
    S_BATCH(started_us, "batch_started_us",
            "When the batch was first seen (microseconds, zkit_clock_usec)"),
    S_BATCH(elapsed_us, "batch_elapsed_us", "Microseconds from the start to completion, or to now"),
};

void zkit__pstats_report(zkit__stats_t *st, const zkit_batch_report_t *r)
{
    if (!r->name[0])
        return;
    for (size_t i = 0; i < S_COUNT(s_batch_fields); i++) {
        const zkit__pstats_field_t *f = &s_batch_fields[i];
        if (zkit__stats_gauge1(st, f->name, "batch", r->name, s_capped(s_field(r, f))) == 0)
            zkit__stats_help(st, f->name, f->help);
    }
    if (zkit__stats_gauge1(st, "batch_complete", "batch", r->name, r->complete ? 1 : 0) == 0)
        zkit__stats_help(st, "batch_complete", "1 once the batch is complete");
}

#define S_WPUB(field, name, help)                                                                  \
    ZKIT__PSTATS_COUNTER(zkit__worker_snapshot_t, pub.field, name, help)
#define S_WINT(field, name, help)                                                                  \
    ZKIT__PSTATS_COUNTER(zkit__worker_snapshot_t, internal.field, name, help)
#define S_WNOW(field, name, help) ZKIT__PSTATS_GAUGE(zkit__worker_snapshot_t, field, name, help)
static const zkit__pstats_field_t s_worker_fields[] = {
    S_WPUB(tasks, "tasks", "Tasks received"),
    S_WPUB(succeeded, "tasks_succeeded",
           "Tasks whose handler succeeded (reliable: and the sink acked)"),
    S_WPUB(failed, "tasks_failed", "Tasks whose handler failed"),
    S_WPUB(reconnects, "reconnects",
           "Times the ventilator was presumed dead and the link made again"),
    S_WPUB(gaps, "task_gaps", "Fast mode: task seqs missing in streams"),
    S_WINT(readies, "readies_sent", "READY sent to the ventilator"),
    S_WINT(disconnects, "disconnects_received", "DISCONNECT received from the ventilator"),
    S_WINT(heartbeats_in, "heartbeats_received", "HEARTBEAT received from the ventilator"),
    S_WINT(results_sent, "results_sent", "RESULT sends, resends included"),
    S_WINT(acks, "acks", "ACK received for a pending result"),
    S_WINT(acks_unknown, "acks_unknown", "ACK for no pending result"),
    S_WINT(abandoned, "results_abandoned", "Results given up unacknowledged (FAIL sent)"),
    S_WINT(overloaded, "tasks_overloaded",
           "Tasks refused with FAIL because the local queue was full"),
    S_WNOW(paused, "paused", "1 while paused by the control endpoint"),
    S_WNOW(connected, "connected", "1 while a link to the ventilator exists"),
    S_WNOW(waiting, "tasks_waiting", "Tasks received and waiting for a handler"),
    S_WNOW(unacked, "results_unacked", "Results sent to the sink and not acknowledged yet"),
    S_WNOW(outbox, "outbox", "DONE and FAIL waiting for the ventilator link"),
    S_WNOW(handlers, "handlers", "Handler threads"),
};

void zkit__worker_stats_fill(zkit__stats_t *st, const zkit__worker_snapshot_t *s)
{
    zkit__pstats_fields(st, s, s_worker_fields, S_COUNT(s_worker_fields));
    zkit__pstats_bad(st, &s->internal.bad);
    zkit__traffic_report(st, "ventilator", &s->vent);
    zkit__traffic_report(st, "sink", &s->sink);
}

#define S_SINK(field, name, help) ZKIT__PSTATS_COUNTER(zkit__sink_stats_t, field, name, help)
#define S_SNOW(field, name, help) ZKIT__PSTATS_GAUGE(zkit__sink_stats_t, field, name, help)
static const zkit__pstats_field_t s_sink_fields[] = {
    S_SINK(results, "results", "Results received with valid meta"),
    S_SINK(stored, "results_stored", "Results the handler stored"),
    S_SINK(refused, "results_refused", "Results the handler refused"),
    S_SINK(duplicates, "results_duplicate",
           "Results for a task already stored (acked again, not stored)"),
    S_SINK(acks, "acks_sent", "ACK sent to workers"),
    S_SINK(oks, "oks_sent", "OK sent for BATCH and DEAD"),
    S_SINK(completes, "completes_sent", "COMPLETE sends, resends included"),
    S_SINK(confirmed, "completes_confirmed", "COMPLETE confirmed by the ventilator"),
    S_SINK(dead, "dead_letters", "Distinct dead letters recorded"),
    S_SNOW(batches, "batches", "Batches tracked now"),
    S_SNOW(completing, "batches_completing",
           "Complete batches whose COMPLETE awaits the ventilator's OK"),
};

void zkit__sink_stats_fill(zkit__stats_t *st, const zkit__sink_stats_t *s,
                           const zkit__traffic_t *traffic, const zkit_batch_report_t *first)
{
    zkit__pstats_bad(st, &s->bad);
    zkit__pstats_fields(st, s, s_sink_fields, S_COUNT(s_sink_fields));
    zkit__traffic_report(st, "bind", traffic);
    zkit__pstats_report(st, first);
}
