/*  device_ops.c: the spool device's control endpoint (core/ops.h): every
    field of zkit_spool_device_stats_t, the spool's own state and counters
    and the dead-letter spool's size as STATS metrics, the consumers as
    peers, messages and bytes in and out of each socket (core/traffic.h),
    and PAUSE / RESUME of deliveries. The metric names are part of
    the protocol: docs/spool-protocol.md, "Control endpoint metrics".

    Both callbacks run in the device's actor thread (it serves the control
    socket in its poll loop), so they read and write the state directly.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/device_internal.h"

#include <string.h>

/* Label values of the reasons, as the STATS map spells them.               */
static const char *const s_reject_labels[ZKIT_SPOOL_DEVICE_REJECT_REASONS_] = {
    "full", "nospace", "failed", "toobig", "error"};
static const char *const s_bad_labels[ZKIT_SPOOL_DEVICE_BAD_REASONS_] = {"frames", "command",
                                                                         "field", "envelope"};

typedef struct {
    const char *name;
    size_t offset; /* of a uint64_t in the stats struct */
    const char *help;
} s_field_t;

#define S_DEV(field, help)                                                                         \
    {                                                                                              \
#field, offsetof(zkit_spool_device_stats_t, field), help                                   \
    }
#define S_SPOOL(field, help)                                                                       \
    {                                                                                              \
        "spool_" #field, offsetof(zkit_spool_device_stats_t, spool.field), help                    \
    }

/* Counters: totals since the device started (the spool's: since it was
   opened, which is the same moment).                                        */
static const s_field_t s_counters[] = {
    S_DEV(puts, "PUT commands received with a valid envelope"),
    S_DEV(pushes, "fire-and-forget envelopes received (bare on --in, or on --in-push)"),
    S_DEV(stored, "records appended to the spool"),
    S_DEV(stored_bytes, "bytes of the envelopes appended to the spool"),
    S_DEV(confirmed, "ids confirmed to producers (CONFIRMED)"),
    S_DEV(duplicates, "PUTs or pushes of an id already stored (a PUT is confirmed again)"),
    S_DEV(push_dropped, "fire-and-forget envelopes that could not be stored"),
    S_DEV(group_commits, "bursts of producer messages made durable by one sync"),
    S_DEV(blocked, "times producers were held because the spool was full (--full block)"),
    S_DEV(unroutable, "confirmations or rejections whose producer was gone"),
    S_DEV(delivered, "DELIVER messages sent to consumers (every attempt)"),
    S_DEV(delivered_bytes, "bytes of the envelopes delivered to consumers"),
    S_DEV(acked, "records retired by a consumer's ACK"),
    S_DEV(duplicate_acks, "ACKs for ids the device does not hold"),
    S_DEV(nacks, "deliveries a consumer gave back (NACK)"),
    S_DEV(requeued, "failed deliveries queued again (NACK, dead consumer, timeout)"),
    S_DEV(duplicate_records, "records whose id was already being delivered: retired at once"),
    S_DEV(dead_letters, "records given up on (max attempts, ttl, not an envelope)"),
    S_DEV(dead_letter_errors, "dead letters the dead-letter spool refused (left in the spool)"),
    S_DEV(consumers_ready, "READY from a new consumer"),
    S_DEV(consumers_expired, "consumers presumed dead (no heartbeat within liveness)"),
    S_DEV(consumers_gone, "consumers that said DISCONNECT or could not be reached"),
    S_DEV(unknown_consumer, "HEARTBEAT, ACK, NACK or DISCONNECT from consumers not registered"),
    S_SPOOL(appends, "records the spool appended"),
    S_SPOOL(append_bytes, "payload bytes the spool appended"),
    S_SPOOL(acks, "records the spool retired (acknowledged)"),
    S_SPOOL(fsyncs, "fdatasync calls on spool segments"),
    S_SPOOL(fsync_errors, "failed fdatasync calls (the spool fails)"),
    S_SPOOL(write_errors, "failed writes to spool segments"),
    S_SPOOL(rolls, "spool segments created"),
    S_SPOOL(retired_segments, "spool segments deleted because fully acknowledged"),
    S_SPOOL(expired_segments, "spool segments deleted by --max-age"),
    S_SPOOL(expired_records, "unacknowledged records lost to --max-age"),
    S_SPOOL(dropped_segments, "spool segments deleted by --full drop-oldest"),
    S_SPOOL(dropped_records, "unacknowledged records lost to --full drop-oldest"),
    S_SPOOL(full_rejects, "appends refused because the spool was full"),
    S_SPOOL(full_blocks, "appends that had to wait for room"),
    S_SPOOL(full_timeouts, "appends that waited for room and gave up"),
    S_SPOOL(cursor_writes, "acknowledgement cursor writes"),
    S_SPOOL(cursor_errors, "failed acknowledgement cursor writes"),
    S_SPOOL(torn_truncations, "torn segment tails cut off by recovery"),
    S_SPOOL(torn_bytes, "bytes cut off torn segment tails by recovery"),
    S_SPOOL(quarantined_regions, "corrupt spool regions skipped"),
    S_SPOOL(quarantined_records, "records lost in corrupt spool regions"),
    S_SPOOL(quarantined_bytes, "bytes of corrupt spool regions"),
    S_SPOOL(bad_segments, "spool segment files set aside (bad header)"),
};

/* Gauges: current values.                                                   */
static const s_field_t s_gauges[] = {
    S_DEV(consumers, "consumers registered"),
    S_DEV(queued, "records in memory waiting for a consumer's credit"),
    S_DEV(in_flight, "records delivered and not yet acknowledged"),
    S_DEV(held, "producer messages held while the spool is full (--full block)"),
    {"lag_records", offsetof(zkit_spool_device_stats_t, spool.unacked),
     "records stored and not yet acknowledged by a consumer (the backlog)"},
    S_SPOOL(bytes, "bytes of the spool's segment files on disk"),
    S_SPOOL(segments, "spool segment files"),
    S_SPOOL(records, "seqs the spool holds, acknowledged or not (newest - oldest + 1)"),
    S_SPOOL(oldest_seq, "first seq of the oldest spool segment (0: none)"),
    S_SPOOL(newest_seq, "last seq appended (0: none)"),
    S_SPOOL(next_seq, "the seq the next append gets"),
    S_SPOOL(ack_floor, "lowest seq not acknowledged"),
    S_SPOOL(synced_seq, "every seq up to this one is durable"),
    S_SPOOL(oldest_ts, "creation time of the oldest spool segment, us since the epoch"),
    S_SPOOL(newest_ts, "ts of the newest record, us since the epoch (0: none)"),
};

static int64_t s_gauge_value(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t) v;
}

/* Adds a help text once the metric exists; a metric never added (an
   unlabelled one always is) has no help to carry.                           */
static void s_help(zkit__stats_t *stats, const char *name, const char *help)
{
    zkit__stats_help(stats, name, help);
}

static void s_bad(zkit__stats_t *stats, const char *sock, const uint64_t *counts)
{
    for (int i = 0; i < ZKIT_SPOOL_DEVICE_BAD_REASONS_; i++) {
        zkit__stats_label_t labels[2] = {{"socket", sock}, {"reason", s_bad_labels[i]}};
        zkit__stats_counter_labels(stats, "bad_messages", labels, 2, counts[i]);
    }
}

void zkit__sdev_ops_stats(zkit__stats_t *stats, void *arg)
{
    zkit__sdev_t *self = arg;
    zkit__sdev_fill_stats(self);
    const zkit_spool_device_stats_t *st = &self->stats;
    const char *base = (const char *) st;
    /* Errors (a limit, out of memory) leave the metric out of this one
       reply: there is nothing better to do inside a STATS answer.        */
    for (size_t i = 0; i < sizeof s_counters / sizeof s_counters[0]; i++) {
        uint64_t v;
        memcpy(&v, base + s_counters[i].offset, sizeof v);
        zkit__stats_counter(stats, s_counters[i].name, v);
        s_help(stats, s_counters[i].name, s_counters[i].help);
    }
    for (int i = 0; i < ZKIT_SPOOL_DEVICE_REJECT_REASONS_; i++)
        zkit__stats_counter1(stats, "rejected", "reason", s_reject_labels[i], st->rejected[i]);
    s_help(stats, "rejected", "PUTs answered REJECTED, by reason");
    /* bad_in covers both producer sockets; bad_push is its --in-push part. */
    uint64_t in_only[ZKIT_SPOOL_DEVICE_BAD_REASONS_];
    for (int i = 0; i < ZKIT_SPOOL_DEVICE_BAD_REASONS_; i++)
        in_only[i] = st->bad_in[i] - self->bad_push[i];
    s_bad(stats, "in", in_only);
    if (self->push)
        s_bad(stats, "in_push", self->bad_push);
    s_bad(stats, "out", st->bad_out);
    zkit__traffic_report(stats, "in", &self->traffic_in);
    if (self->push)
        zkit__traffic_report(stats, "in_push", &self->traffic_push);
    zkit__traffic_report(stats, "out", &self->traffic_out);
    s_help(stats, "bad_messages",
           "peer messages dropped as malformed, by socket and reason (frames: wrong frame "
           "count, command: unknown command, field: malformed credit or id list, envelope: "
           "not a valid envelope)");

    for (size_t i = 0; i < sizeof s_gauges / sizeof s_gauges[0]; i++) {
        uint64_t v;
        memcpy(&v, base + s_gauges[i].offset, sizeof v);
        zkit__stats_gauge(stats, s_gauges[i].name, s_gauge_value(v));
        s_help(stats, s_gauges[i].name, s_gauges[i].help);
    }
    zkit__stats_gauge(stats, "paused", st->paused ? 1 : 0);
    s_help(stats, "paused", "1 while PAUSE holds deliveries to consumers, else 0");
    zkit__stats_gauge(stats, "spool_failed", st->spool.failed ? 1 : 0);
    s_help(stats, "spool_failed", "1 once the spool failed (I/O or fsync error): writes refused");
    zkit__stats_gauge(stats, "spool_failed_errno", st->spool.failed ? st->spool.failed_errno : 0);
    s_help(stats, "spool_failed_errno", "the errno that failed the spool, 0 when it has not");
    if (self->dead_spool) {
        zkit_spool_stats_t dead;
        zkit_spool_stats(self->dead_spool, &dead);
        zkit__stats_gauge(stats, "dead_letter_spool_bytes", s_gauge_value(dead.bytes));
        s_help(stats, "dead_letter_spool_bytes", "bytes of the dead-letter spool on disk");
        zkit__stats_gauge(stats, "dead_letter_spool_records", s_gauge_value(dead.unacked));
        s_help(stats, "dead_letter_spool_records", "records in the dead-letter spool");
    }
    zkit__sdev_out_peers(self, stats);
}

zkit__control_result_t zkit__sdev_ops_command(const char *command, const char *args, char *reply,
                                              size_t reply_size, void *arg)
{
    zkit__sdev_t *self = arg;
    char who[ZKIT__SDEV_NAME_MAX + 16];
    snprintf(who, sizeof who, "spool device %s", self->name);
    /* Nothing else to do on a change: the loop's next turn delivers, or
       only ticks the dispatcher, according to the flag.                    */
    return zkit__control_pause_resume(command, args, reply, reply_size, &self->paused, who,
                                      "deliveries");
}
