/*  pipeline_stats.h (internal): what the three pipeline components put in
    their control endpoint's STATS map (core/control.h), and the helpers
    their stats callbacks share. The metric names are documented in
    docs/pipeline-protocol.md, section 8.

    Every callback runs on its component's actor thread (zkit__ops_serve),
    the thread that owns the counters, so nothing here locks.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_PIPELINE_STATS_H_INCLUDED
#define ZKIT_PIPELINE_PIPELINE_STATS_H_INCLUDED

#include <stddef.h>

#include "core/control.h"
#include "core/traffic.h"
#include "pipeline/pipeline.h"

/*  One metric read from a uint64_t field of a struct: the tables below
    say, once, which field is which metric, so the callbacks loop instead of
    repeating a call per field. A gauge's value is capped at INT64_MAX.
    Errors (a limit of the builder) leave a metric out: a STATS reply is
    best effort.                                                             */
typedef struct {
    const char *name;
    size_t offset; /* of the uint64_t in the struct */
    bool gauge;
    const char *help;
} zkit__pstats_field_t;

#define ZKIT__PSTATS_COUNTER(type, field, name, help)                                              \
    {                                                                                              \
        name, offsetof(type, field), false, help                                                   \
    }
#define ZKIT__PSTATS_GAUGE(type, field, name, help)                                                \
    {                                                                                              \
        name, offsetof(type, field), true, help                                                    \
    }

/*  Adds the count metrics of fields, read from base (the struct).           */
void zkit__pstats_fields(zkit__stats_t *st, const void *base, const zkit__pstats_field_t *fields,
                         size_t count);

/*  A single gauge and its help text.                                         */
void zkit__pstats_gauge(zkit__stats_t *st, const char *name, int64_t value, const char *help);

/*  input_dropped{reason}: every reason, zeros included, so that a reader
    sees the series before the first bad message. The reason label values
    are stable: frames, command, field, envelope, meta, unexpected, limit.  */
void zkit__pstats_bad(zkit__stats_t *st, const zkit__pipeline_bad_t *bad);

/*  The label value of a drop reason ("frames"), or "other".                 */
const char *zkit__pstats_bad_label(zkit__pipeline_bad_reason_t why);

/*  Every field of a batch report as batch_* gauges labelled batch=<name>;
    nothing when the report names no batch (none seen yet).                  */
void zkit__pstats_report(zkit__stats_t *st, const zkit_batch_report_t *report);

/*  The worker's metrics from its two counter sets, its gauges and its two
    sockets' traffic (the actor in worker_actor.c gathers them).            */
typedef struct {
    zkit_worker_stats_t pub;
    zkit__worker_stats_t internal;
    uint64_t paused;    /* 1 while paused */
    uint64_t connected; /* 1 while a link to the ventilator exists */
    uint64_t waiting;   /* tasks waiting for a handler */
    uint64_t unacked;   /* results sent, ACK not yet received */
    uint64_t outbox;    /* DONE and FAIL waiting for the ventilator link */
    uint64_t handlers;  /* handler threads (0: the actor runs the handler) */
    zkit__traffic_t vent;
    zkit__traffic_t sink;
} zkit__worker_snapshot_t;

void zkit__worker_stats_fill(zkit__stats_t *st, const zkit__worker_snapshot_t *snap);

/*  The sink's metrics: counters, gauges, its socket's traffic and its first
    batch's report.                                                          */
void zkit__sink_stats_fill(zkit__stats_t *st, const zkit__sink_stats_t *stats,
                           const zkit__traffic_t *traffic, const zkit_batch_report_t *first);

#endif
